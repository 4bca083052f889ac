//! The AMF service: the replicated state of [`super::state`] on the ring, and this node's
//! part of the work (the *node director*): the life cycle of the components of its own SUs,
//! their callbacks, health checks, failures and the recovery they escalate to.
//!
//! What every member does at the same point of the total order: apply an AMF ring message or
//! a completed sync to its [`Cluster`], then run [`Cluster::plan`]. What only the SU's node
//! does: carry out the targets of its SUs' assignments through the components' callbacks,
//! and confirm them on the ring ([`RingMessage::Assigned`]); start, watch, restart and clean
//! up its components; report its SUs' presence ([`RingMessage::Presence`]).
//!
//! A node reports an SU as not instantiated (or disabled) only once every component of it is
//! cleaned up: at that point of the order the SU's assignments are gone at every member and
//! its SIs may be given to another SU at once. A node that left the membership may still run
//! its components (a partition): its SIs get a new active only after the *fence delay*
//! ([`AmfConfig::fence_ms`]), which the lowest member measures and announces
//! ([`RingMessage::Fenced`]); meanwhile the node on the other side, without quorum, has
//! removed its actives.

use std::collections::{BTreeMap, BTreeSet};

use bytes::Bytes;
use dataplane::stats::Visitor;
use totem_dpdk::srp::{ConfigChange, ConfigKind};
use totem_dpdk::{DeliveryKind, NodeId, RingId};
use tracing::{debug, error, info, warn};

use super::model::{HealthCheckInvoker, Recovery};
use super::state::{Admin, Cluster, Flat, Rules, SiIx, SuIx};
use crate::exec::{ClcCommand, ClcKind, ClcOutcome, ConnId, Context, Service, ServiceId};
use ais_proto::amf::{
    AdminOp, AmfProtocol, Callback, Ha, Presence, Request, Response, RingMessage, SuReport,
    recovery as rec,
};
use ais_proto::codec::DecodeError;
use ais_proto::ipc::{AisError, Protocol, Reply, decode_body};
use ais_proto::ring;

const ID: ServiceId = AmfProtocol::ID;
const MS: u64 = 1_000_000;

/// The service's settings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AmfConfig {
    /// The cluster is a two-node cluster with quorum's `two_node`: when the two are apart,
    /// only the node with the lower node id serves (the tie-breaker; docs/amf.md).
    pub two_node: bool,
    /// How long after a membership change that removed a node which may have served an SI
    /// the SI waits before another SU takes it active, ms: the time the removed node needs to
    /// notice it lost quorum and stop its actives.
    pub fence_ms: u64,
    /// A gap longer than this between two ticks means this executive was not scheduled long
    /// enough for its ring to have changed behind its back, ms: at most the Totem token
    /// timeout. It then acts again only once its own probe came back through the ring (or
    /// the next sync).
    pub freeze_ms: u64,
    /// The contact lease, ms: while a membership forms, this node keeps serving only as long
    /// as the nodes it heard from within this time (their joins, re-sent every Totem `join`
    /// interval) hold quorum with it; else it cleans up its serving components at once (the
    /// self-fence). The others stop sending joins that count this node at the latest when
    /// they form a ring without it, so it has stopped serving one lease after that: the fence
    /// delay must be longer than the lease.
    pub lease_ms: u64,
}

impl Default for AmfConfig {
    fn default() -> Self {
        AmfConfig {
            two_node: false,
            fence_ms: 87,
            freeze_ms: 100,
            lease_ms: 75,
        }
    }
}

/// Deliberate defects, for the tests that prove the AMF checker catches a broken service.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct AmfDefects {
    /// Assign without quorum, and keep actives when quorum is lost.
    pub ignore_quorum: bool,
    /// Promote a new active before the old one confirmed it stopped.
    pub promote_unconfirmed: bool,
    /// Never escalate: every failure gets the component's own recovery.
    pub no_escalation: bool,
    /// No fence delay after a node left.
    pub no_fence: bool,
    /// No two-node tie-breaker: each half of a two-node split serves.
    pub no_tiebreak: bool,
    /// No self-fence: a node cut off keeps serving until its own new ring is synchronised.
    pub no_lease: bool,
    /// No suspects for the nodes this one was in touch with since its last sync: a node that
    /// completed a sync the others completed only in the transitional configuration (or never)
    /// may have assigned SIs on a plan they never made, and is not waited for.
    pub no_sync_suspects: bool,
    /// The operator's SU restart also restarts an SU this node failed over, before the
    /// cluster applied its failover.
    pub restart_failed_over: bool,

    /// A built-in component is told to hold its CSI active for any assignment (standby
    /// too), as if every CSI set added the address.
    pub builtin_active_for_any: bool,
}

/// Told what the service decides (the executive's log; the simulator's checker).
pub trait Observer: Send {
    /// The AMF sync of `ring` completed at `node`.
    fn activated(&mut self, _node: NodeId, _ring: RingId, _members: &[NodeId], _quorate: bool) {}

    /// `node` took recovery `action` for `su` (and component `comp`) at `now` (ns).
    fn recovery(
        &mut self,
        _node: NodeId,
        _now: u64,
        _su: &str,
        _comp: Option<&str>,
        _action: Recovery,
    ) {
    }

    /// `node` reported SU `su`'s presence.
    fn presence(&mut self, _node: NodeId, _su: &str, _presence: Presence, _enabled: bool) {}
}

/// Counters for `aisctl status`.
#[derive(Debug, Default, Clone, Copy)]
pub struct AmfStats {
    /// Instantiate commands run.
    pub instantiations: u64,
    /// Instantiations that failed or timed out.
    pub instantiation_failures: u64,
    /// Cleanups run.
    pub cleanups: u64,
    /// Component failures detected (exit, health check, error report, callback).
    pub failures: u64,
    /// Health checks missed or failed.
    pub healthcheck_failures: u64,
    /// Component restarts.
    pub component_restarts: u64,
    /// SU restarts.
    pub su_restarts: u64,
    /// SU failovers.
    pub su_failovers: u64,
    /// Node failovers.
    pub node_failovers: u64,
    /// Node failfasts.
    pub node_failfasts: u64,
    /// Assignment changes confirmed by this node.
    pub confirmed: u64,
    /// Sync parts refused for another model.
    pub model_mismatch: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum CState {
    Down,
    Instantiating { clc: u64, started: bool },
    Registered,
    Cleaning { clc: u64 },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum After {
    Nothing,
    Instantiate,
}

#[derive(Debug, Clone)]
struct Hc {
    key: String,
    invoker: HealthCheckInvoker,
    period: u64,
    max: u64,
    recovery: Recovery,
    due: u64,
    outstanding: Option<(u64, u64)>,
}

#[derive(Debug, Clone)]
struct LocalComp {
    state: CState,
    conn: Option<ConnId>,
    attempts: u32,
    deadline: Option<u64>,
    restarts: Vec<u64>,
    hc: Vec<Hc>,
    after: After,
    /// Its CSIs must be set again once it registers (it restarted).
    resend: bool,
    /// What this component may hold, per SI: a serving state from the moment it is sent, any
    /// other change once answered; cleared when its process is gone.
    holds: BTreeMap<SiIx, Ha>,
    /// The last CSI callback sent to it, per SI: an older one's answer changes nothing.
    last_sent: BTreeMap<SiIx, u64>,
}

#[derive(Debug, Clone)]
struct Flight {
    generation: u32,
    target: Option<Ha>,
    waiting: BTreeSet<usize>,
    deadline: u64,
}

#[derive(Debug, Clone)]
struct LocalSu {
    presence: Presence,
    enabled: bool,
    reported: Option<(Presence, bool)>,
    held: BTreeMap<SiIx, Ha>,
    flight: BTreeMap<SiIx, Flight>,
    /// The generation last confirmed per SI (not confirmed twice).
    confirmed: BTreeMap<SiIx, u32>,
    /// SIs whose change was given up half way: the components may hold anything, so the
    /// target is sent again even when it equals `held`.
    dirty: BTreeSet<SiIx>,
    restarts: Vec<u64>,
    /// Cleaning up for a failover: report when every component is down.
    failing: bool,
    /// Repair (instantiate again) after a failover.
    repair: bool,
    comps: Vec<LocalComp>,
}

#[derive(Debug, Clone, Copy)]
enum Inv {
    Csi {
        su: SuIx,
        si: SiIx,
        comp: usize,
        generation: u32,
        target: Option<Ha>,
    },
    Reset {
        su: SuIx,
        comp: usize,
        si: SiIx,
        ha: Ha,
    },
    Healthcheck {
        su: SuIx,
        comp: usize,
        hc: usize,
    },
}

/// The AMF service.
pub struct Amf {
    flat: Flat,
    cfg: AmfConfig,
    defects: AmfDefects,
    rules: Rules,
    cluster: Cluster,
    /// The sync in progress: its ring and the parts delivered (sender, message).
    syncing: Option<(RingId, Vec<(NodeId, RingMessage)>)>,
    /// From a regular configuration until this service's sync completes.
    in_sync: bool,
    /// A sync completed at least once (the node director waits for the first).
    synced: bool,
    local: BTreeMap<SuIx, LocalSu>,
    invocations: BTreeMap<u64, Inv>,
    clcs: BTreeMap<u64, (SuIx, usize, ClcKind)>,
    /// CSI assignments of built-in components in flight: the command's id, the invocation it
    /// answers.
    builtin_invs: BTreeMap<u64, u64>,
    next_inv: u64,
    next_clc: u64,
    fence_timer: Option<(RingId, u64)>,
    node_failovers: Vec<u64>,
    /// The time of the last tick (a long gap means this executive was frozen).
    last_tick: u64,
    /// After a freeze: the probe whose return makes this node's view current again.
    stale: Option<u64>,
    /// When the last regular configuration was delivered here (this node's clock, ns).
    ring_at: u64,
    /// The node failed over: its SUs are not repaired.
    node_failed: bool,
    /// Forming a new membership (from [`Service::gather`] to the next regular
    /// configuration), and whether this node fenced itself in it.
    gathering: Option<bool>,
    /// When this node last heard from each node, ns.
    contact: BTreeMap<NodeId, u64>,
    /// The members of the ring of this node's last completed sync and of every regular
    /// configuration since: whoever of them is no member now may have completed a sync (and
    /// acted on its plan) that this node completed only in a transitional configuration, at
    /// another point of the message order, or not at all.
    since_sync: BTreeSet<u32>,
    observer: Option<Box<dyn Observer>>,
    stats: AmfStats,
}

impl std::fmt::Debug for Amf {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Amf")
            .field("sus", &self.flat.sus.len())
            .field("stats", &self.stats)
            .finish_non_exhaustive()
    }
}

impl Amf {
    /// The service for this node (`node`) with a validated model.
    pub fn new(flat: Flat, node: NodeId, cfg: AmfConfig) -> Amf {
        Amf::with_defects(flat, node, cfg, AmfDefects::default())
    }

    /// The service with deliberate defects (tests of the checker).
    pub fn with_defects(flat: Flat, node: NodeId, cfg: AmfConfig, defects: AmfDefects) -> Amf {
        let mut local = BTreeMap::new();
        for (i, su) in flat.sus.iter().enumerate() {
            if su.nodeid != node.0 {
                continue;
            }
            let comps = su
                .comps
                .iter()
                .map(|c| {
                    let t = &flat.model.comp_types[c.ctype];
                    LocalComp {
                        state: CState::Down,
                        conn: None,
                        attempts: 0,
                        deadline: None,
                        restarts: Vec::new(),
                        hc: t
                            .health_checks
                            .iter()
                            .map(|h| Hc {
                                key: h.key.clone(),
                                invoker: h.invoker,
                                period: h.period_ms * MS,
                                max: h.max_duration_ms * MS,
                                recovery: h.recovery.unwrap_or(t.recovery),
                                due: 0,
                                outstanding: None,
                            })
                            .collect(),
                        after: After::Nothing,
                        resend: false,
                        holds: BTreeMap::new(),
                        last_sent: BTreeMap::new(),
                    }
                })
                .collect();
            local.insert(
                i,
                LocalSu {
                    presence: Presence::Uninstantiated,
                    enabled: true,
                    reported: None,
                    held: BTreeMap::new(),
                    flight: BTreeMap::new(),
                    confirmed: BTreeMap::new(),
                    dirty: BTreeSet::new(),
                    restarts: Vec::new(),
                    failing: false,
                    repair: false,
                    comps,
                },
            );
        }
        let rules = Rules {
            two_node: cfg.two_node && !defects.no_tiebreak,
            ignore_quorum: defects.ignore_quorum,
            promote_unconfirmed: defects.promote_unconfirmed,
        };
        let cluster = Cluster::new(&flat);
        Amf {
            flat,
            cfg,
            defects,
            rules,
            cluster,
            syncing: None,
            in_sync: false,
            synced: false,
            local,
            invocations: BTreeMap::new(),
            clcs: BTreeMap::new(),
            builtin_invs: BTreeMap::new(),
            next_inv: 1,
            next_clc: 1,
            fence_timer: None,
            node_failovers: Vec::new(),
            last_tick: 0,
            stale: None,
            ring_at: 0,
            node_failed: false,
            gathering: None,
            contact: BTreeMap::new(),
            since_sync: BTreeSet::new(),
            observer: None,
            stats: AmfStats::default(),
        }
    }

    /// Reports decisions to `observer`.
    #[must_use]
    pub fn with_observer(mut self, observer: Box<dyn Observer>) -> Amf {
        self.observer = Some(observer);
        self
    }

    /// Its counters.
    pub fn counters(&self) -> AmfStats {
        self.stats
    }

    /// The replicated state (tests, status).
    pub fn cluster(&self) -> &Cluster {
        &self.cluster
    }

    /// AMF messages go in safe order: a message a node delivers in a regular configuration
    /// was received by every member, so no member acts on a change the others never see.
    fn submit(&mut self, cx: &mut Context<'_>, m: &RingMessage) {
        cx.submit_internal(DeliveryKind::Safe, ring::encode(ID, m));
    }

    fn comp_type(&self, su: SuIx, comp: usize) -> &super::model::CompType {
        &self.flat.model.comp_types[self.flat.sus[su].comps[comp].ctype]
    }

    // ----- the replicated part -----

    fn apply(&mut self, cx: &mut Context<'_>, sender: NodeId, m: RingMessage) {
        debug!(node = cx.node().0, ring = ?cx.ring(), from = sender.0, next = self.cluster.next_generation, msg = ?m, "amf: apply");
        match m {
            RingMessage::Presence {
                su,
                presence,
                enabled,
            } => {
                let su = usize::from(su);
                if su >= self.flat.sus.len() || self.flat.sus[su].nodeid != sender.0 {
                    return;
                }
                let s = &mut self.cluster.sus[su];
                s.presence = presence;
                s.enabled = enabled;
                if presence != Presence::Instantiated || !enabled {
                    self.cluster.drop_su(su);
                }
                if let Some(o) = &mut self.observer
                    && sender == cx.node()
                {
                    o.presence(cx.node(), &self.flat.sus[su].name, presence, enabled);
                }
            }
            RingMessage::Assigned {
                su,
                si,
                generation,
                ha,
            } => {
                let (su, si) = (usize::from(su), usize::from(si));
                if su < self.flat.sus.len() && self.flat.sus[su].nodeid == sender.0 {
                    self.cluster.confirm(si, su, generation, ha);
                }
            }
            RingMessage::Admin { op, si, index } => {
                self.apply_admin(cx, op, si, usize::from(index))
            }
            RingMessage::Fenced { rep, seq } => {
                if cx.ring()
                    == (RingId {
                        rep: NodeId(rep),
                        seq,
                    })
                {
                    for s in &mut self.cluster.sis {
                        s.fence.clear();
                    }
                }
            }
            RingMessage::Sync { .. } | RingMessage::Probe { .. } => {}
        }
        self.cluster.plan(&self.flat, &self.rules);
    }

    fn apply_admin(&mut self, cx: &mut Context<'_>, op: AdminOp, si: bool, index: usize) {
        if si {
            let Some(s) = self.cluster.sis.get_mut(index) else {
                return;
            };
            s.admin_version += 1;
            match op {
                AdminOp::Lock | AdminOp::Shutdown => s.locked = true,
                AdminOp::Unlock => s.locked = false,
                AdminOp::Switchover => {
                    let g = self.flat.sis[index].sg;
                    let Some((&from, _)) = s
                        .asg
                        .iter()
                        .find(|(_, a)| a.held == Some(Ha::Active) && a.target == Some(Ha::Active))
                    else {
                        return;
                    };
                    let has_standby = s.asg.values().any(|a| a.held == Some(Ha::Standby));
                    if !has_standby {
                        return;
                    }
                    // Under 2N one SU serves every SI of the SG: they move together.
                    let sis: Vec<SiIx> =
                        if self.flat.sgs[g].redundancy == super::model::Redundancy::TwoN {
                            self.flat.sgs[g].sis.clone()
                        } else {
                            vec![index]
                        };
                    for o in sis {
                        if self.cluster.sis[o]
                            .asg
                            .get(&from)
                            .is_some_and(|a| a.target == Some(Ha::Active))
                        {
                            self.cluster.set_target(o, from, Some(Ha::Quiesced));
                        }
                    }
                    info!(si = %self.flat.sis[index].name, from = %self.flat.sus[from].name, "amf: switchover");
                }
                _ => {}
            }
            return;
        }
        let Some(s) = self.cluster.sus.get_mut(index) else {
            return;
        };
        s.admin_version += 1;
        match (op, s.admin) {
            (AdminOp::Lock, Admin::Unlocked | Admin::ShuttingDown) => s.admin = Admin::Locked,
            (AdminOp::Shutdown, Admin::Unlocked) => s.admin = Admin::ShuttingDown,
            (AdminOp::Unlock, Admin::Locked | Admin::ShuttingDown) => s.admin = Admin::Unlocked,
            (AdminOp::LockInstantiation, Admin::Locked) => s.admin = Admin::LockedInstantiation,
            (AdminOp::UnlockInstantiation, Admin::LockedInstantiation) => s.admin = Admin::Locked,
            (AdminOp::Restart, _)
                if !self.defects.restart_failed_over
                    && self.local.get(&index).is_some_and(|l| {
                        l.failing || l.presence != Presence::Instantiated || !l.enabled
                    }) =>
            {
                // This node failed the SU over (a freeze, a fence, an escalation) and the
                // cluster may not have applied that yet: restarting it now would bring it back
                // before its SIs moved, under assignments the others are about to give away.
                info!(t_ms = cx.now() / MS, su = %self.flat.sus[index].name, "amf: SU restart by the operator ignored: the SU is not in service on this node (failed over or stopped)");
            }
            (AdminOp::Restart, _) if self.local.contains_key(&index) => {
                info!(t_ms = cx.now() / MS, su = %self.flat.sus[index].name, "amf: SU restart by the operator");
                let n = self.local[&index].comps.len();
                for c in 0..n {
                    self.restart_comp(cx, index, c);
                }
            }
            _ => {}
        }
    }

    fn rebuild(
        &mut self,
        cx: &mut Context<'_>,
        parts: Vec<(NodeId, RingMessage)>,
        generation: u32,
    ) {
        let members: BTreeSet<u32> = cx.members().iter().map(|m| m.0).collect();
        let mut admin_su: BTreeMap<usize, (u64, u8)> = BTreeMap::new();
        let mut admin_si: BTreeMap<usize, (u64, u8)> = BTreeMap::new();
        let mut reports: Vec<SuReport> = Vec::new();
        let mut fence: BTreeMap<usize, BTreeSet<u32>> = BTreeMap::new();
        let mut parts = parts;
        parts.sort_by_key(|(n, _)| n.0);
        for (sender, m) in parts {
            let RingMessage::Sync {
                model,
                admin,
                sus,
                suspects,
                ..
            } = m
            else {
                continue;
            };
            if model != self.flat.digest {
                self.stats.model_mismatch += 1;
                error!(
                    node = sender.0,
                    "amf: node {} runs another AMF model (digest {model:x}, ours {:x}): its part of the sync is ignored",
                    sender.0,
                    self.flat.digest
                );
                continue;
            }
            for (si, index, version, state) in admin {
                let map = if si { &mut admin_si } else { &mut admin_su };
                let e = map.entry(usize::from(index)).or_insert((version, state));
                if version > e.0 {
                    *e = (version, state);
                }
            }
            for r in sus {
                if usize::from(r.su) < self.flat.sus.len()
                    && self.flat.sus[usize::from(r.su)].nodeid == sender.0
                {
                    reports.push(r);
                }
            }
            for (si, node) in suspects {
                if !members.contains(&node) {
                    fence.entry(usize::from(si)).or_default().insert(node);
                }
            }
        }
        let mut c = Cluster::new(&self.flat);
        c.members = members;
        c.quorate = cx.quorate();
        // Every member starts from the same number: above the highest any member used.
        c.next_generation = generation.wrapping_add(1).max(1);
        for (i, s) in c.sus.iter_mut().enumerate() {
            if let Some(&(v, st)) = admin_su.get(&i) {
                s.admin = Admin::from_code(st);
                s.admin_version = v;
            }
        }
        for (i, s) in c.sis.iter_mut().enumerate() {
            if let Some(&(v, st)) = admin_si.get(&i) {
                s.locked = st != 1;
                s.admin_version = v;
            }
            if !self.defects.no_fence {
                s.fence = fence.remove(&i).unwrap_or_default();
            }
        }
        reports.sort_by_key(|r| r.su);
        debug!(t_ms = cx.now() / MS, ring = ?cx.ring(), ?reports, ?fence, "amf: rebuild");
        for r in reports {
            let su = usize::from(r.su);
            c.sus[su].presence = r.presence;
            c.sus[su].enabled = r.enabled;
            // An SU being cleaned up keeps what it may still hold until its node reports
            // it stopped, but is wanted to hold nothing.
            let leaving = r.presence != Presence::Instantiated || !r.enabled;
            for (si, ha) in r.held {
                let si = usize::from(si);
                if si < c.sis.len() {
                    c.sis[si].asg.insert(
                        su,
                        super::state::Asg {
                            target: (!leaving).then_some(ha),
                            held: Some(ha),
                            generation: 0,
                            pending_serve: false,
                        },
                    );
                }
            }
        }
        self.cluster = c;
    }

    /// The generation every member agrees on after a sync: the highest any member used.
    fn sync_generation(parts: &[(NodeId, RingMessage)]) -> u32 {
        parts
            .iter()
            .filter_map(|(_, m)| match m {
                RingMessage::Sync { generation, .. } => Some(*generation),
                _ => None,
            })
            .max()
            .unwrap_or(0)
    }

    fn my_sync(&self, cx: &Context<'_>) -> RingMessage {
        let ring = cx.ring();
        let members: BTreeSet<u32> = cx.members().iter().map(|m| m.0).collect();
        let mut admin = Vec::new();
        for (i, s) in self.cluster.sus.iter().enumerate() {
            admin.push((false, i as u16, s.admin_version, s.admin.code()));
        }
        for (i, s) in self.cluster.sis.iter().enumerate() {
            admin.push((
                true,
                i as u16,
                s.admin_version,
                if s.locked { 2 } else { 1 },
            ));
        }
        let sus = self
            .local
            .iter()
            .map(|(&su, l)| {
                // What the components themselves may hold (a serving state from the moment it
                // was sent, any other once answered; nothing for a process started afresh),
                // the state that may serve first: not the SU's last confirmation, which a
                // restart or a change given up half way leaves behind.
                let mut held: BTreeMap<SiIx, Ha> = BTreeMap::new();
                let maybe = l
                    .flight
                    .iter()
                    .filter_map(|(&si, f)| f.target.filter(|t| t.serves()).map(|t| (si, t)))
                    .chain(
                        l.comps
                            .iter()
                            .flat_map(|c| c.holds.iter().map(|(s, h)| (*s, *h))),
                    );
                for (si, t) in maybe {
                    match held.get(&si).copied() {
                        Some(h) if h.serves() => {}
                        _ if t.serves() => {
                            held.insert(si, t);
                        }
                        None => {
                            held.insert(si, t);
                        }
                        _ => {}
                    }
                }
                let (presence, enabled) = if l.failing {
                    (Presence::Terminating, false)
                } else {
                    (l.presence, l.enabled)
                };
                SuReport {
                    su: su as u16,
                    presence,
                    enabled,
                    held: held.into_iter().map(|(si, h)| (si as u16, h)).collect(),
                }
            })
            .collect();
        let mut suspects = Vec::new();
        for (i, s) in self.cluster.sis.iter().enumerate() {
            let mut nodes: BTreeSet<u32> = s.fence.clone();
            // Any assignment: a node that held a standby may have promoted it in a view the
            // others never saw before it left.
            for &su in s.asg.keys() {
                nodes.insert(self.flat.sus[su].nodeid);
            }
            // Any node this one was in touch with since its last sync that has an SU of the
            // SI's SG: it may have completed a sync this node completed only in the
            // transitional configuration (where nothing is applied) or never, and assigned
            // the SI to its own SU on that sync's plan, which this node never made.
            if !self.defects.no_fence && !self.defects.no_sync_suspects {
                for &su in &self.flat.sgs[self.flat.sis[i].sg].sus {
                    let n = self.flat.sus[su].nodeid;
                    if self.since_sync.contains(&n) {
                        nodes.insert(n);
                    }
                }
            }
            for n in nodes {
                if !members.contains(&n) {
                    suspects.push((i as u16, n));
                }
            }
        }
        RingMessage::Sync {
            rep: ring.rep.0,
            seq: ring.seq,
            model: self.flat.digest,
            generation: self.cluster.next_generation,
            admin,
            sus,
            suspects,
        }
    }

    // ----- the node director -----

    fn now(cx: &Context<'_>) -> u64 {
        cx.now()
    }

    fn clc(&mut self, cx: &mut Context<'_>, su: SuIx, comp: usize, kind: ClcKind) -> u64 {
        let id = self.next_clc;
        self.next_clc += 1;
        let t = self.comp_type(su, comp).clone();
        let (command, timeout_ms) = match kind {
            ClcKind::Csi { .. } => (None, t.callback_timeout_ms),
            ClcKind::Instantiate => (Some(t.instantiate.clone()), t.instantiate_timeout_ms),
            ClcKind::Terminate => (t.terminate.clone(), t.terminate_timeout_ms),
            ClcKind::Cleanup | ClcKind::Failfast => (t.cleanup.clone(), t.cleanup_timeout_ms),
        };
        self.clcs.insert(id, (su, comp, kind));
        cx.clc(
            ID,
            ClcCommand {
                id,
                kind,
                comp: self.flat.sus[su].comps[comp].dn.clone(),
                command,
                timeout_ms,
            },
        );
        id
    }

    fn instantiate(&mut self, cx: &mut Context<'_>, su: SuIx, comp: usize) {
        let id = self.clc(cx, su, comp, ClcKind::Instantiate);
        let timeout = self.comp_type(su, comp).instantiate_timeout_ms * MS;
        let now = Self::now(cx);
        let c = &mut self.local.get_mut(&su).expect("local SU").comps[comp];
        c.state = CState::Instantiating {
            clc: id,
            started: false,
        };
        c.deadline = Some(now + timeout);
        c.conn = None;
        self.stats.instantiations += 1;
    }

    fn cleanup(&mut self, cx: &mut Context<'_>, su: SuIx, comp: usize, after: After) {
        let state = self.local[&su].comps[comp].state;
        if let CState::Cleaning { .. } = state {
            self.local.get_mut(&su).expect("local SU").comps[comp].after = after;
            return;
        }
        let id = self.clc(cx, su, comp, ClcKind::Cleanup);
        self.stats.cleanups += 1;
        let c = &mut self.local.get_mut(&su).expect("local SU").comps[comp];
        c.state = CState::Cleaning { clc: id };
        c.after = after;
        c.deadline = None;
        c.conn = None;
        for h in &mut c.hc {
            h.outstanding = None;
        }
        // Its callbacks in flight will not be answered: the assignments waiting for it
        // start again once it is back (or are given up with the SU).
        let l = self.local.get_mut(&su).expect("local SU");
        let flat = &self.flat;
        let dropped: Vec<SiIx> = l
            .flight
            .iter()
            .filter(|(si, f)| {
                f.waiting.contains(&comp)
                    || (0..flat.sis[**si].csis.len())
                        .any(|k| flat.comp_of(su, **si, k) == Some(comp))
            })
            .map(|(si, _)| *si)
            .collect();
        for si in dropped {
            l.flight.remove(&si);
            l.dirty.insert(si);
        }
        self.invocations.retain(|_, inv| match *inv {
            Inv::Csi { su: s, comp: k, .. }
            | Inv::Reset { su: s, comp: k, .. }
            | Inv::Healthcheck { su: s, comp: k, .. } => !(s == su && k == comp),
        });
    }

    fn restart_comp(&mut self, cx: &mut Context<'_>, su: SuIx, comp: usize) {
        let l = self.local.get_mut(&su).expect("local SU");
        l.comps[comp].resend = true;
        // Flights waiting for it wait for its restart instead.
        self.cleanup(cx, su, comp, After::Instantiate);
    }

    fn failover_su(&mut self, cx: &mut Context<'_>, su: SuIx) {
        let n = {
            let l = self.local.get_mut(&su).expect("local SU");
            if l.failing {
                return;
            }
            l.failing = true;
            l.repair = !self.node_failed;
            l.comps.len()
        };
        self.stats.su_failovers += 1;
        for c in 0..n {
            self.cleanup(cx, su, c, After::Nothing);
        }
    }

    /// A component failed: pick the recovery, escalate, act.
    fn fail(
        &mut self,
        cx: &mut Context<'_>,
        su: SuIx,
        comp: usize,
        recovery: Option<Recovery>,
        why: &str,
    ) {
        if !self.local.contains_key(&su) {
            return;
        }
        if self.local[&su].failing {
            return;
        }
        self.stats.failures += 1;
        let now = Self::now(cx);
        let sg = self.flat.sus[su].sg;
        let esc = self.flat.sgs[sg].escalation;
        let name = self.flat.sus[su].comps[comp].dn.clone();
        let mut r = recovery.unwrap_or(self.comp_type(su, comp).recovery);
        warn!(comp = %name, why, "amf: component failed");
        if !self.defects.no_escalation {
            if r == Recovery::ComponentRestart {
                let l = self.local.get_mut(&su).expect("local SU");
                let c = &mut l.comps[comp];
                c.restarts
                    .retain(|&t| t + esc.comp_restart_probation_ms * MS > now);
                if c.restarts.len() as u32 >= esc.comp_restart_max {
                    r = Recovery::SuRestart;
                    c.restarts.clear();
                }
            }
            if r == Recovery::SuRestart {
                let l = self.local.get_mut(&su).expect("local SU");
                l.restarts
                    .retain(|&t| t + esc.su_restart_probation_ms * MS > now);
                if l.restarts.len() as u32 >= esc.su_restart_max {
                    r = Recovery::SuFailover;
                    l.restarts.clear();
                }
            }
            if r == Recovery::SuFailover {
                let node = self
                    .flat
                    .model
                    .nodes
                    .iter()
                    .find(|n| n.nodeid == cx.node().0)
                    .map(|n| (n.su_failover_max, n.su_failover_probation_ms));
                if let Some((max, prob)) = node {
                    self.node_failovers.retain(|&t| t + prob * MS > now);
                    if self.node_failovers.len() as u32 >= max {
                        r = Recovery::NodeFailover;
                        self.node_failovers.clear();
                    }
                }
            }
        }
        let su_name = self.flat.sus[su].name.clone();
        if let Some(o) = &mut self.observer {
            o.recovery(cx.node(), now, &su_name, Some(&name), r);
        }
        info!(t_ms = now / MS, su = %su_name, comp = %name, recovery = r.name(), "amf: recovery");
        match r {
            Recovery::ComponentRestart => {
                self.stats.component_restarts += 1;
                let l = self.local.get_mut(&su).expect("local SU");
                l.comps[comp].restarts.push(now);
                self.restart_comp(cx, su, comp);
            }
            Recovery::SuRestart => {
                self.stats.su_restarts += 1;
                let l = self.local.get_mut(&su).expect("local SU");
                l.restarts.push(now);
                let n = l.comps.len();
                for c in 0..n {
                    self.restart_comp(cx, su, c);
                }
            }
            Recovery::SuFailover => {
                self.node_failovers.push(now);
                self.failover_su(cx, su);
            }
            Recovery::NodeFailover | Recovery::NodeFailfast => {
                self.stats.node_failovers += 1;
                self.node_failed = true;
                if r == Recovery::NodeFailfast {
                    self.stats.node_failfasts += 1;
                    let cmd = self
                        .flat
                        .model
                        .nodes
                        .iter()
                        .find(|n| n.nodeid == cx.node().0)
                        .and_then(|n| n.failfast.clone());
                    error!("amf: node failfast");
                    let id = self.next_clc;
                    self.next_clc += 1;
                    cx.clc(
                        ID,
                        ClcCommand {
                            id,
                            kind: ClcKind::Failfast,
                            comp: String::new(),
                            command: cmd,
                            timeout_ms: 10_000,
                        },
                    );
                }
                let sus: Vec<SuIx> = self.local.keys().copied().collect();
                for s in sus {
                    self.failover_su(cx, s);
                }
            }
        }
    }

    fn instantiation_failed(&mut self, cx: &mut Context<'_>, su: SuIx, comp: usize) {
        self.stats.instantiation_failures += 1;
        let retries = self.comp_type(su, comp).instantiation_retries;
        let l = self.local.get_mut(&su).expect("local SU");
        l.comps[comp].attempts += 1;
        let attempts = l.comps[comp].attempts;
        let was_instantiated = l.presence == Presence::Instantiated;
        if attempts <= retries {
            self.cleanup(cx, su, comp, After::Instantiate);
        } else if was_instantiated {
            // A restart that does not come back: the SU fails over.
            l.comps[comp].attempts = 0;
            self.cleanup(cx, su, comp, After::Nothing);
            self.fail(cx, su, comp, Some(Recovery::SuFailover), "restart failed");
        } else {
            warn!(su = %self.flat.sus[su].name, "amf: instantiation failed");
            let n = l.comps.len();
            l.presence = Presence::InstantiationFailed;
            l.enabled = false;
            for c in 0..n {
                self.cleanup(cx, su, c, After::Nothing);
            }
        }
    }

    /// A failing SU whose components are all cleaned up holds nothing any more.
    fn failed_over(&mut self, su: SuIx) {
        let l = self.local.get_mut(&su).expect("local SU");
        if l.failing && l.comps.iter().all(|c| c.state == CState::Down) {
            l.failing = false;
            l.held.clear();
            l.flight.clear();
            l.dirty.clear();
            l.presence = Presence::Uninstantiated;
            l.enabled = false;
            for c in &mut l.comps {
                c.attempts = 0;
                c.resend = false;
            }
        }
    }

    /// Moves the node director forward: instantiations, presence reports, assignments.
    fn drive(&mut self, cx: &mut Context<'_>) {
        if !self.synced || self.in_sync || self.stale.is_some() {
            return;
        }
        let sus: Vec<SuIx> = self.local.keys().copied().collect();
        for su in sus {
            self.drive_su(cx, su);
        }
    }

    fn drive_su(&mut self, cx: &mut Context<'_>, su: SuIx) {
        let admin = self.cluster.sus[su].admin;
        self.failed_over(su);
        let l = &self.local[&su];
        let all_down = l.comps.iter().all(|c| c.state == CState::Down);
        if admin == Admin::LockedInstantiation {
            if !all_down {
                let n = l.comps.len();
                for c in 0..n {
                    if self.local[&su].comps[c].state != CState::Down {
                        self.cleanup(cx, su, c, After::Nothing);
                    }
                }
            } else {
                let l = self.local.get_mut(&su).expect("local SU");
                l.presence = Presence::Uninstantiated;
                l.enabled = true;
                l.held.clear();
                l.flight.clear();
            }
        } else if !l.failing {
            // A failed-over SU is repaired only once the cluster has applied its failover (its
            // report that it stopped), so its SIs move elsewhere first.
            let cluster_has_it = self.cluster.sus[su].presence == Presence::Instantiated
                && self.cluster.sus[su].enabled;
            let may_start = match l.presence {
                Presence::Uninstantiated => l.enabled || (l.repair && !cluster_has_it),
                Presence::Instantiating | Presence::Instantiated => true,
                _ => false,
            };
            if may_start {
                // Start the next level once the lower ones registered.
                let mut level_blocked = None;
                let n = l.comps.len();
                for c in 0..n {
                    let lvl = self.comp_type(su, c).instantiation_level;
                    let st = self.local[&su].comps[c].state;
                    if let Some(b) = level_blocked
                        && lvl > b
                    {
                        break;
                    }
                    match st {
                        CState::Down if self.local[&su].presence != Presence::Instantiated => {
                            self.instantiate(cx, su, c);
                            level_blocked = Some(lvl);
                        }
                        CState::Registered => {}
                        _ => level_blocked = Some(lvl),
                    }
                }
                let l = self.local.get_mut(&su).expect("local SU");
                if l.comps.iter().all(|c| c.state == CState::Registered) {
                    if l.presence != Presence::Instantiated || !l.enabled {
                        l.presence = Presence::Instantiated;
                        l.enabled = true;
                        l.repair = false;
                        info!(su = %self.flat.sus[su].name, "amf: SU instantiated");
                    }
                } else if l.presence == Presence::Uninstantiated {
                    l.presence = Presence::Instantiating;
                }
            }
        }
        // Report.
        let l = &self.local[&su];
        let now_state = (l.presence, l.enabled);
        let reportable = matches!(
            l.presence,
            Presence::Instantiated | Presence::Uninstantiated | Presence::InstantiationFailed
        ) && (l.presence == Presence::Instantiated
            || all_down
            || l.comps.iter().all(|c| c.state == CState::Down));
        if reportable && l.reported != Some(now_state) {
            let rep = self.cluster.sus[su];
            self.local.get_mut(&su).expect("local SU").reported = Some(now_state);
            if rep.presence != now_state.0 || rep.enabled != now_state.1 {
                self.submit(
                    cx,
                    &RingMessage::Presence {
                        su: su as u16,
                        presence: now_state.0,
                        enabled: now_state.1,
                    },
                );
            }
        }
        self.drive_assignments(cx, su);
    }

    fn drive_assignments(&mut self, cx: &mut Context<'_>, su: SuIx) {
        let now = Self::now(cx);
        for si in 0..self.flat.sis.len() {
            let rep = self.cluster.sis[si].asg.get(&su).copied();
            let Some(rep) = rep else {
                // Not assigned here in the cluster's view: a local leftover goes (after a
                // sync, or a removal confirmed as dropped).
                let l = &self.local[&su];
                let holds =
                    l.held.contains_key(&si) || l.comps.iter().any(|c| c.holds.contains_key(&si));
                if holds
                    && !l.flight.contains_key(&si)
                    && self.cluster.sus[su].presence == Presence::Instantiated
                    && self.cluster.members.contains(&self.flat.sus[su].nodeid)
                    && self.cluster.sus[su].enabled
                {
                    self.start_flight(cx, su, si, 0, None, now);
                }
                continue;
            };
            let l = &self.local[&su];
            let local = l.held.get(&si).copied();
            tracing::trace!(su, si, ?rep, ?local, flight = ?l.flight.get(&si), dirty = l.dirty.contains(&si), "amf: drive");
            if let Some(f) = l.flight.get(&si) {
                if f.waiting.is_empty() {
                    self.finish_flight(cx, su, si);
                    continue;
                }
                if f.generation == rep.generation {
                    continue;
                }
                if f.target == rep.target {
                    let f = self
                        .local
                        .get_mut(&su)
                        .expect("local SU")
                        .flight
                        .get_mut(&si)
                        .expect("flight");
                    f.generation = rep.generation;
                    continue;
                }
                // Superseded: start over.
                let l = self.local.get_mut(&su).expect("local SU");
                l.flight.remove(&si);
                l.dirty.insert(si);
            }
            if rep.target == local && !self.local[&su].dirty.contains(&si) {
                // Confirmed when the cluster's view differs, or when a serving target came and
                // went before this node acted on it (held and target agree, but the cluster
                // counts the SU as maybe serving until a confirmation of the latest target:
                // without one the SI waits for it forever).
                if (rep.held != local || rep.pending_serve)
                    && self.local[&su].confirmed.get(&si) != Some(&rep.generation)
                {
                    self.local
                        .get_mut(&su)
                        .expect("local SU")
                        .confirmed
                        .insert(si, rep.generation);
                    self.stats.confirmed += 1;
                    self.submit(
                        cx,
                        &RingMessage::Assigned {
                            su: su as u16,
                            si: si as u16,
                            generation: rep.generation,
                            ha: local,
                        },
                    );
                }
                continue;
            }
            self.start_flight(cx, su, si, rep.generation, rep.target, now);
        }
    }

    fn start_flight(
        &mut self,
        cx: &mut Context<'_>,
        su: SuIx,
        si: SiIx,
        generation: u32,
        target: Option<Ha>,
        now: u64,
    ) {
        let ncsi = self.flat.sis[si].csis.len();
        let mut plan = Vec::new();
        for k in 0..ncsi {
            if let Some(c) = self.flat.comp_of(su, si, k) {
                plan.push((k, c));
            }
        }
        let l = &self.local[&su];
        // A built-in component (no process, no connection) takes its CSIs from the runtime.
        let builtin: Vec<bool> = (0..l.comps.len())
            .map(|c| self.comp_type(su, c).builtin.is_some())
            .collect();
        let live: Vec<bool> = l
            .comps
            .iter()
            .zip(&builtin)
            .map(|(c, &b)| c.state == CState::Registered && (c.conn.is_some() || b))
            .collect();
        if target.is_some() && !plan.iter().all(|&(_, c)| live[c]) {
            return; // wait for the components
        }
        let mut waiting = BTreeSet::new();
        let mut sends = Vec::new();
        let mut builtin_sends = Vec::new();
        for (k, c) in plan {
            if !live[c] {
                continue; // down or starting afresh: holds nothing
            }
            let inv = self.next_inv;
            self.next_inv += 1;
            self.invocations.insert(
                inv,
                Inv::Csi {
                    su,
                    si,
                    comp: c,
                    generation,
                    target,
                },
            );
            waiting.insert(c);
            let comp = &mut self.local.get_mut(&su).expect("local SU").comps[c];
            comp.last_sent.insert(si, inv);
            if let Some(ha) = target.filter(|h| h.serves()) {
                comp.holds.insert(si, ha);
            }
            if builtin[c] {
                let active = target == Some(Ha::Active)
                    || (self.defects.builtin_active_for_any && target.is_some());
                builtin_sends.push((inv, c, k, active));
                continue;
            }
            let l = &self.local[&su];
            let (csi, _, attrs) = &self.flat.sis[si].csis[k];
            let cb = match target {
                Some(ha) => Callback::CsiSet {
                    invocation: inv,
                    si: self.flat.sis[si].name.clone(),
                    csi: csi.clone(),
                    ha,
                    attributes: attrs.clone(),
                },
                None => Callback::CsiRemove {
                    invocation: inv,
                    si: self.flat.sis[si].name.clone(),
                    csi: csi.clone(),
                },
            };
            sends.push((l.comps[c].conn.expect("registered"), cb));
        }
        let mut timeout = plan_timeout(&self.flat, su);
        if !target.is_some_and(Ha::serves) && self.must_stop_serving(cx) {
            // This node may not serve (no quorum, or the two-node rule): the other side may
            // make another SU active once the fence delay has passed, so what still serves
            // here must stop well before. A component that does not confirm in half the fence
            // delay is cleaned up (killed) instead.
            let may_serve = self.local[&su]
                .comps
                .iter()
                .any(|c| c.holds.get(&si).is_some_and(|h| h.serves()));
            if may_serve {
                timeout = timeout.min(self.stop_ns());
            }
        }
        for (conn, cb) in sends {
            cx.callback(conn, &cb);
        }
        for (inv, c, k, active) in builtin_sends {
            let kind = ClcKind::Csi {
                si: si as u32,
                csi: k as u32,
                active,
            };
            let id = self.clc(cx, su, c, kind);
            self.builtin_invs.insert(id, inv);
        }
        debug!(t_ms = now / MS, su = %self.flat.sus[su].name, si = %self.flat.sis[si].name, ?target, "amf: assignment sent");
        let l = self.local.get_mut(&su).expect("local SU");
        l.flight.insert(
            si,
            Flight {
                generation,
                target,
                waiting,
                deadline: now + timeout,
            },
        );
        self.finish_flight(cx, su, si);
    }

    fn finish_flight(&mut self, cx: &mut Context<'_>, su: SuIx, si: SiIx) {
        let l = self.local.get_mut(&su).expect("local SU");
        let Some(f) = l.flight.get(&si) else {
            return;
        };
        if !f.waiting.is_empty() {
            return;
        }
        let f = l.flight.remove(&si).expect("flight");
        tracing::trace!(t_ms = cx.now() / MS, su, si, target = ?f.target, "amf: flight done");
        l.dirty.remove(&si);
        match f.target {
            Some(ha) => {
                l.held.insert(si, ha);
            }
            None => {
                l.held.remove(&si);
            }
        }
        let current = self.cluster.sis[si].asg.get(&su).map(|a| a.generation);
        info!(t_ms = cx.now() / MS, su = %self.flat.sus[su].name, si = %self.flat.sis[si].name, ha = f.target.map_or("none", Ha::name), "amf: assignment carried out");
        if current == Some(f.generation) && !self.in_sync {
            l.confirmed.insert(si, f.generation);
            self.stats.confirmed += 1;
            self.submit(
                cx,
                &RingMessage::Assigned {
                    su: su as u16,
                    si: si as u16,
                    generation: f.generation,
                    ha: f.target,
                },
            );
        }
    }

    fn registered(&mut self, cx: &mut Context<'_>, su: SuIx, comp: usize, conn: ConnId) {
        let now = Self::now(cx);
        let l = self.local.get_mut(&su).expect("local SU");
        let c = &mut l.comps[comp];
        c.state = CState::Registered;
        c.conn = Some(conn);
        // A new process: it holds nothing yet.
        c.holds.clear();
        c.deadline = None;
        c.attempts = 0;
        for h in &mut c.hc {
            h.outstanding = None;
            h.due = now
                + match h.invoker {
                    HealthCheckInvoker::Amf => h.period,
                    HealthCheckInvoker::Component => h.period + h.max,
                };
        }
        if std::mem::take(&mut c.resend) {
            // Set its CSIs again with what the SU holds, when that is still what the cluster
            // wants (an active only with quorum); anything else is reconciled by `drive`.
            let held: Vec<(SiIx, Ha)> = l.held.iter().map(|(s, h)| (*s, *h)).collect();
            let mut again = Vec::new();
            for (si, ha) in held {
                let wanted = self.synced
                    && !self.in_sync
                    && self.cluster.sis[si]
                        .asg
                        .get(&su)
                        .is_some_and(|a| a.target == Some(ha))
                    && (!ha.serves() || self.cluster.quorate || self.rules.ignore_quorum);
                if wanted {
                    again.push((si, ha));
                } else {
                    self.local.get_mut(&su).expect("local SU").dirty.insert(si);
                }
            }
            for (si, ha) in again {
                for k in 0..self.flat.sis[si].csis.len() {
                    if self.flat.comp_of(su, si, k) != Some(comp) {
                        continue;
                    }
                    let inv = self.next_inv;
                    self.next_inv += 1;
                    self.invocations
                        .insert(inv, Inv::Reset { su, comp, si, ha });
                    let c = &mut self.local.get_mut(&su).expect("local SU").comps[comp];
                    c.last_sent.insert(si, inv);
                    if ha.serves() {
                        c.holds.insert(si, ha);
                    }
                    let (csi, _, attrs) = &self.flat.sis[si].csis[k];
                    cx.callback(
                        conn,
                        &Callback::CsiSet {
                            invocation: inv,
                            si: self.flat.sis[si].name.clone(),
                            csi: csi.clone(),
                            ha,
                            attributes: attrs.clone(),
                        },
                    );
                }
            }
        }
    }

    /// A component answered callback `invocation` (a built-in one: its runtime command).
    fn answered(&mut self, cx: &mut Context<'_>, invocation: u64, ok: bool) {
        match self.invocations.remove(&invocation) {
            Some(Inv::Csi {
                su,
                si,
                comp,
                generation,
                target,
            }) => {
                let l = self.local.get_mut(&su).expect("local SU");
                let c = &mut l.comps[comp];
                let latest = c.last_sent.get(&si) == Some(&invocation);
                if ok && latest {
                    match target {
                        Some(ha) => c.holds.insert(si, ha),
                        None => c.holds.remove(&si),
                    };
                }
                // A sync renumbers generations, and a flight whose target stayed the same
                // takes the new one without sending again: the answer to its latest
                // callback still completes it.
                if let Some(f) = l.flight.get_mut(&si)
                    && (f.generation == generation || (latest && f.target == target))
                {
                    f.waiting.remove(&comp);
                }
                if ok {
                    self.finish_flight(cx, su, si);
                } else {
                    self.fail(cx, su, comp, None, "refused a CSI assignment");
                }
            }
            Some(Inv::Reset { su, comp, si, ha }) => {
                if ok {
                    let c = &mut self.local.get_mut(&su).expect("local SU").comps[comp];
                    if c.last_sent.get(&si) == Some(&invocation) {
                        c.holds.insert(si, ha);
                    }
                } else {
                    self.fail(cx, su, comp, None, "refused a CSI assignment");
                }
            }
            Some(Inv::Healthcheck { su, comp, hc }) => {
                if let Some(h) = self
                    .local
                    .get_mut(&su)
                    .and_then(|l| l.comps[comp].hc.get_mut(hc))
                {
                    h.outstanding = None;
                    if !ok {
                        let r = h.recovery;
                        self.stats.healthcheck_failures += 1;
                        self.fail(cx, su, comp, Some(r), "health check failed");
                    }
                }
            }
            None => {}
        }
    }

    fn comp_by_conn(&self, conn: ConnId) -> Option<(SuIx, usize)> {
        self.local.iter().find_map(|(&su, l)| {
            l.comps
                .iter()
                .position(|c| {
                    c.conn == Some(conn)
                        && matches!(c.state, CState::Registered | CState::Instantiating { .. })
                })
                .map(|c| (su, c))
        })
    }

    /// The status tree as this node answers it (`aisctl amf status`).
    fn status_tree(&self, node: NodeId) -> ais_proto::amf::Tree {
        super::status::tree(&self.flat, &self.cluster, &self.rules, node.0, |su, c| {
            let l = self.local.get(&su)?;
            let comp = l.comps.get(c)?;
            let presence = match comp.state {
                CState::Down if l.presence == Presence::InstantiationFailed => {
                    Presence::InstantiationFailed
                }
                CState::Down => Presence::Uninstantiated,
                CState::Instantiating { .. } => Presence::Instantiating,
                CState::Registered => Presence::Instantiated,
                CState::Cleaning { .. } if comp.after == After::Instantiate => Presence::Restarting,
                CState::Cleaning { .. } => Presence::Terminating,
            };
            Some((presence, self.cluster.sus[su].enabled && !l.failing))
        })
    }

    fn admin_request(
        &mut self,
        cx: &mut Context<'_>,
        conn: ConnId,
        id: u64,
        op: AdminOp,
        entity: &str,
    ) {
        if !cx.quorate() {
            cx.error(conn, id, AisError::TryAgain);
            return;
        }
        let (si, index) = if let Some(i) = self.flat.su_named(entity) {
            if op == AdminOp::Switchover {
                cx.error(conn, id, AisError::BadOperation);
                return;
            }
            (false, i)
        } else if let Some(i) = self.flat.si_named(entity) {
            let ok = match op {
                AdminOp::Lock | AdminOp::Unlock | AdminOp::Shutdown => true,
                AdminOp::Switchover => self.flat.sis[i].max_standby > 0,
                _ => false,
            };
            if !ok {
                cx.error(conn, id, AisError::BadOperation);
                return;
            }
            (true, i)
        } else {
            cx.error(conn, id, AisError::NotExist);
            return;
        };
        if !si {
            let a = self.cluster.sus[index].admin;
            let ok = matches!(
                (op, a),
                (AdminOp::Lock, Admin::Unlocked | Admin::ShuttingDown)
                    | (AdminOp::Shutdown, Admin::Unlocked)
                    | (AdminOp::Unlock, Admin::Locked | Admin::ShuttingDown)
                    | (AdminOp::LockInstantiation, Admin::Locked)
                    | (AdminOp::UnlockInstantiation, Admin::LockedInstantiation)
                    | (AdminOp::Restart, Admin::Unlocked)
            );
            if !ok {
                cx.error(conn, id, AisError::BadOperation);
                return;
            }
        }
        info!(op = op.name(), entity, "amf: administrative operation");
        let m = RingMessage::Admin {
            op,
            si,
            index: index as u16,
        };
        cx.submit_for(conn, id, ID, 0, DeliveryKind::Safe, ring::encode(ID, &m));
    }
}

impl Amf {
    /// The self-fence: while a membership forms, once the nodes this node heard from within
    /// the lease no longer hold quorum with it (or, in a two-node cluster, do not include the
    /// node that serves alone), its SUs that may serve fail over at once. The others give up
    /// on it only after the consensus timeout and then wait the fence delay: it has stopped
    /// by then.
    fn lease(&mut self, cx: &mut Context<'_>) {
        if self.gathering != Some(false) || self.defects.no_lease || self.rules.ignore_quorum {
            return;
        }
        let now = Self::now(cx);
        let me = cx.node();
        let lease = self.cfg.lease_ms * MS;
        let fresh: BTreeSet<NodeId> = self
            .contact
            .iter()
            .filter(|(n, t)| **n == me || **t + lease >= now)
            .map(|(n, _)| *n)
            .chain(std::iter::once(me))
            .collect();
        if self.may_keep_serving(cx, &fresh) {
            return;
        }
        self.fence_self(
            cx,
            &format!(
                "out of touch with a quorum of the cluster for {} ms while its membership changes (heard: {fresh:?})",
                self.cfg.lease_ms
            ),
        );
    }

    /// This node's SUs that may serve fail over at once.
    fn fence_self(&mut self, cx: &mut Context<'_>, why: &str) {
        self.gathering = Some(true);
        let serving: Vec<SuIx> = self
            .local
            .iter()
            .filter(|(_, l)| {
                l.held.values().any(|h| h.serves())
                    || l.flight.values().any(|f| f.target.is_some_and(Ha::serves))
                    || l.comps.iter().any(|c| c.holds.values().any(|h| h.serves()))
            })
            .map(|(s, _)| *s)
            .collect();
        if serving.is_empty() {
            return;
        }
        error!("amf: {why}: this node's serving SUs fail over (self-fence)");
        for su in serving {
            self.failover_su(cx, su);
        }
    }

    /// Whether this node, in touch with `nodes` (itself among them), may go on serving: they
    /// hold quorum, and in a two-node cluster they include the node that serves alone.
    fn may_keep_serving(&self, cx: &Context<'_>, nodes: &BTreeSet<NodeId>) -> bool {
        self.may_keep_serving_as(cx, cx.node(), nodes)
    }

    /// Whether `me`, in touch with `nodes`, may serve (see [`Amf::may_keep_serving`]).
    fn may_keep_serving_as(&self, cx: &Context<'_>, me: NodeId, nodes: &BTreeSet<NodeId>) -> bool {
        let me = me.0;
        let lowest = self.flat.model.nodes.iter().map(|n| n.nodeid).min();
        let tie =
            !self.rules.two_node || lowest.is_none_or(|l| l == me || nodes.contains(&NodeId(l)));
        cx.quorate_with(nodes) && tie
    }

    /// Whether this node's SUs may not serve now: it has no quorum, or it is the node that
    /// gives way in a two-node split.
    fn must_stop_serving(&self, cx: &Context<'_>) -> bool {
        if self.rules.ignore_quorum {
            return false;
        }
        !self.cluster.quorate
            || !self
                .cluster
                .node_may_serve(&self.flat, &self.rules, cx.node().0)
    }

    /// How long a node that may not serve gives a component to confirm it stopped serving
    /// before it cleans it up, ns: half the fence delay (at least 1 ms).
    fn stop_ns(&self) -> u64 {
        (self.cfg.fence_ms / 2).max(1) * MS
    }
}

fn plan_timeout(flat: &Flat, su: SuIx) -> u64 {
    flat.sus[su]
        .comps
        .iter()
        .map(|c| flat.model.comp_types[c.ctype].callback_timeout_ms)
        .max()
        .unwrap_or(10_000)
        * MS
}

fn recovery_of(code: u8) -> Option<Recovery> {
    match code {
        rec::COMPONENT_RESTART => Some(Recovery::ComponentRestart),
        rec::COMPONENT_FAILOVER => Some(Recovery::SuFailover),
        rec::NODE_SWITCHOVER | rec::NODE_FAILOVER => Some(Recovery::NodeFailover),
        rec::NODE_FAILFAST => Some(Recovery::NodeFailfast),
        _ => None,
    }
}

impl Service for Amf {
    fn id(&self) -> ServiceId {
        ID
    }

    fn name(&self) -> &'static str {
        AmfProtocol::NAME
    }

    fn lib_request(
        &mut self,
        cx: &mut Context<'_>,
        conn: ConnId,
        id: u64,
        op: u16,
        body: Bytes,
    ) -> Result<(), DecodeError> {
        match decode_body(op, body)? {
            Request::Register { comp } => {
                let found = self.local.iter().find_map(|(&su, _)| {
                    self.flat.sus[su]
                        .comps
                        .iter()
                        .position(|c| c.dn == comp)
                        .map(|c| (su, c))
                });
                match found {
                    Some((su, c))
                        if matches!(
                            self.local[&su].comps[c].state,
                            CState::Instantiating { .. }
                        ) =>
                    {
                        self.registered(cx, su, c, conn);
                        cx.ok(conn, id);
                        self.drive(cx);
                    }
                    Some(_) => cx.error(conn, id, AisError::Exist),
                    None => cx.error(conn, id, AisError::NotExist),
                }
            }
            Request::Unregister => match self.comp_by_conn(conn) {
                Some((su, c)) => {
                    cx.ok(conn, id);
                    self.fail(cx, su, c, None, "unregistered");
                    self.drive(cx);
                }
                None => cx.error(conn, id, AisError::NotExist),
            },
            Request::Response { invocation, ok } => {
                cx.ok(conn, id);
                self.answered(cx, invocation, ok);
                self.drive(cx);
            }
            Request::HealthcheckConfirm { key, ok } => {
                let Some((su, c)) = self.comp_by_conn(conn) else {
                    cx.error(conn, id, AisError::NotExist);
                    return Ok(());
                };
                let now = Self::now(cx);
                let hc = self.local[&su].comps[c]
                    .hc
                    .iter()
                    .position(|h| h.key == key && h.invoker == HealthCheckInvoker::Component);
                let Some(k) = hc else {
                    cx.error(conn, id, AisError::NotExist);
                    return Ok(());
                };
                cx.ok(conn, id);
                let h = &mut self.local.get_mut(&su).expect("local SU").comps[c].hc[k];
                h.due = now + h.period + h.max;
                if !ok {
                    let r = h.recovery;
                    self.stats.healthcheck_failures += 1;
                    self.fail(cx, su, c, Some(r), "health check confirmed failed");
                    self.drive(cx);
                }
            }
            Request::ErrorReport { recovery } => {
                let Some((su, c)) = self.comp_by_conn(conn) else {
                    cx.error(conn, id, AisError::NotExist);
                    return Ok(());
                };
                cx.ok(conn, id);
                self.fail(cx, su, c, recovery_of(recovery), "error report");
                self.drive(cx);
            }
            Request::NameGet => match self.comp_by_conn(conn) {
                Some((su, c)) => {
                    let dn = self.flat.sus[su].comps[c].dn.clone();
                    cx.reply(conn, id, Reply::Service(Response::Name(dn)));
                }
                None => cx.error(conn, id, AisError::NotExist),
            },
            Request::Status => {
                let lines = self.status_tree(cx.node()).lines();
                cx.reply(conn, id, Reply::Service(Response::Status(lines)));
            }
            Request::Tree => {
                let tree = self.status_tree(cx.node());
                cx.reply(conn, id, Reply::Service(Response::Tree(Box::new(tree))));
            }
            Request::Admin { op, entity } => self.admin_request(cx, conn, id, op, &entity),
        }
        Ok(())
    }

    fn clc_result(&mut self, cx: &mut Context<'_>, id: u64, outcome: ClcOutcome) {
        let Some(&(su, comp, kind)) = self.clcs.get(&id) else {
            return;
        };
        if let ClcKind::Csi { .. } = kind {
            self.clcs.remove(&id);
            if let Some(inv) = self.builtin_invs.remove(&id) {
                self.answered(cx, inv, outcome == ClcOutcome::Succeeded);
            }
            self.drive(cx);
            return;
        }
        if outcome != ClcOutcome::Succeeded || kind != ClcKind::Instantiate {
            self.clcs.remove(&id);
        }
        let Some(state) = self.local.get(&su).map(|l| l.comps[comp].state) else {
            return;
        };
        match (kind, state, outcome) {
            (ClcKind::Instantiate, CState::Instantiating { clc, .. }, ClcOutcome::Succeeded)
                if clc == id =>
            {
                let sa_aware = self.comp_type(su, comp).sa_aware;
                let c = &mut self.local.get_mut(&su).expect("local SU").comps[comp];
                c.state = CState::Instantiating { clc, started: true };
                if !sa_aware {
                    c.state = CState::Registered;
                    c.deadline = None;
                    // A new instance holds nothing: after a restart, the SIs the SU holds
                    // are set on it again.
                    c.holds.clear();
                    if std::mem::take(&mut c.resend) {
                        let l = self.local.get_mut(&su).expect("local SU");
                        let held: Vec<SiIx> = l.held.keys().copied().collect();
                        for si in held {
                            if (0..self.flat.sis[si].csis.len())
                                .any(|k| self.flat.comp_of(su, si, k) == Some(comp))
                            {
                                l.dirty.insert(si);
                            }
                        }
                    }
                }
            }
            (ClcKind::Instantiate, CState::Instantiating { clc, .. }, _) if clc == id => {
                self.instantiation_failed(cx, su, comp);
            }
            (ClcKind::Instantiate, CState::Registered, ClcOutcome::Exited) => {
                self.clcs.remove(&id);
                self.fail(cx, su, comp, None, "process exited");
            }
            (ClcKind::Cleanup, CState::Cleaning { clc }, _) if clc == id => {
                if outcome != ClcOutcome::Succeeded {
                    error!(comp = %self.flat.sus[su].comps[comp].dn, ?outcome, "amf: cleanup failed; the component is taken as stopped");
                }
                let after = {
                    let c = &mut self.local.get_mut(&su).expect("local SU").comps[comp];
                    c.state = CState::Down;
                    c.holds.clear();
                    c.after
                };
                // An instantiation's exit watch ends with the cleanup.
                self.clcs.retain(|_, (s, k, kd)| {
                    !(*s == su && *k == comp && *kd == ClcKind::Instantiate)
                });
                if after == After::Instantiate && !self.local[&su].failing {
                    self.instantiate(cx, su, comp);
                }
                self.failed_over(su);
            }
            _ => {}
        }
        self.drive(cx);
    }

    fn exec_deliver(
        &mut self,
        cx: &mut Context<'_>,
        sender: NodeId,
        kind: u16,
        body: Bytes,
    ) -> Result<(), DecodeError> {
        let m: RingMessage = decode_body(kind, body)?;
        if let RingMessage::Sync { rep, seq, .. } = &m {
            if let Some((ring, parts)) = &mut self.syncing
                && *ring
                    == (RingId {
                        rep: NodeId(*rep),
                        seq: *seq,
                    })
            {
                parts.push((sender, m));
            }
            return Ok(());
        }
        if let RingMessage::Probe { nonce } = m {
            // Back in order: the ring it went round is current. During a sync (of that ring,
            // or of the next, installed after the probe was sent), the rebuilt state is current
            // too; the sync's end drives.
            if sender == cx.node() && self.stale == Some(nonce) {
                self.stale = None;
                self.drive(cx);
            }
            return Ok(());
        }
        if self.in_sync || !self.synced {
            // Stale, or about a state the sync replaces: nodes confirm again after it.
            return Ok(());
        }
        self.apply(cx, sender, m);
        self.drive(cx);
        Ok(())
    }

    fn gather(&mut self, cx: &mut Context<'_>) {
        if self.gathering.is_some() {
            return;
        }
        self.gathering = Some(false);
        // In touch with its ring until now; from here on only joins count.
        let at = Self::now(cx);
        for m in cx.members() {
            let c = self.contact.entry(*m).or_default();
            *c = (*c).max(at);
        }
        self.lease(cx);
    }

    fn heard(&mut self, cx: &mut Context<'_>, node: NodeId) {
        self.contact.insert(node, Self::now(cx));
    }

    fn excluded(&mut self, cx: &mut Context<'_>, node: NodeId) {
        // A member of this node's ring forms one without it, possibly at once: unless the
        // rest of the cluster cannot hold quorum without this node, the others may soon
        // choose new actives.
        self.gather(cx);
        self.contact.remove(&node);
        let others: BTreeSet<NodeId> = self
            .flat
            .model
            .nodes
            .iter()
            .map(|n| NodeId(n.nodeid))
            .chain(cx.members().iter().copied())
            .filter(|n| *n != cx.node())
            .collect();
        if self.gathering == Some(false)
            && !self.defects.no_lease
            && !self.rules.ignore_quorum
            && self.may_keep_serving_as(cx, NodeId(u32::MAX), &others)
        {
            self.fence_self(cx, &format!("node {node} counts it failed"));
        } else {
            self.lease(cx);
        }
    }

    fn confchg(&mut self, cx: &mut Context<'_>, change: &ConfigChange) {
        if change.kind == ConfigKind::Regular {
            // The new ring is whom this node is in touch with now. If they hold no quorum,
            // its sync may take any time: the self-fence acts at once instead.
            let now = Self::now(cx);
            self.ring_at = now;
            self.contact.retain(|n, _| change.members.contains(n));
            for m in &change.members {
                self.contact.insert(*m, now);
            }
            self.since_sync.extend(change.members.iter().map(|m| m.0));
            self.gathering = Some(false);
            if self.may_keep_serving(cx, &change.members.iter().copied().collect()) {
                self.gathering = None;
            } else {
                self.lease(cx);
            }
        }
        // From the transitional configuration on (and at the regular one), what is delivered
        // may differ between the parts of a split: nothing is applied until the next sync
        // rebuilds the state.
        self.in_sync = true;
        self.fence_timer = None;
    }

    fn syncs(&self) -> bool {
        true
    }

    fn sync_init(&mut self, cx: &mut Context<'_>) {
        let ring = cx.ring();
        self.syncing = Some((ring, Vec::new()));
        let m = self.my_sync(cx);
        self.submit(cx, &m);
    }

    fn sync_activate(&mut self, cx: &mut Context<'_>) {
        let Some((ring, parts)) = self.syncing.take() else {
            return;
        };
        let generation = Self::sync_generation(&parts);
        self.rebuild(cx, parts, generation);
        // Fresh generations for the rebuilt assignments (same order at every member).
        let mut next = self.cluster.next_generation;
        for si in &mut self.cluster.sis {
            for a in si.asg.values_mut() {
                a.generation = next;
                next = next.wrapping_add(1).max(1);
            }
        }
        self.cluster.next_generation = next;
        for l in self.local.values_mut() {
            l.confirmed.clear();
            // Reported again whenever it differs from what the sync made of it.
            l.reported = None;
        }
        self.in_sync = false;
        self.synced = true;
        self.since_sync = cx.members().iter().map(|m| m.0).collect();
        // A sync confirms this node's view only for a ring installed after a freeze was
        // noticed: a sync completed from what was queued while frozen is as stale as the rest.
        if self.stale.is_some_and(|at| self.ring_at >= at) {
            self.stale = None;
        }
        self.cluster.plan(&self.flat, &self.rules);
        let lowest = cx.members().iter().map(|m| m.0).min();
        if lowest == Some(cx.node().0) && self.cluster.sis.iter().any(|s| !s.fence.is_empty()) {
            self.fence_timer = Some((ring, cx.now() + self.cfg.fence_ms * MS));
        }
        if let Some(o) = &mut self.observer {
            o.activated(cx.node(), ring, cx.members(), self.cluster.quorate);
        }
        debug!(ring = ?ring, quorate = self.cluster.quorate, "amf: synchronised");
        self.drive(cx);
    }

    fn sync_abort(&mut self, _cx: &mut Context<'_>) {
        self.syncing = None;
    }

    fn conn_closed(&mut self, cx: &mut Context<'_>, conn: ConnId) {
        if let Some((su, c)) = self.comp_by_conn(conn) {
            self.local.get_mut(&su).expect("local SU").comps[c].conn = None;
            self.fail(cx, su, c, None, "its connection closed (process exit)");
            self.drive(cx);
        }
    }

    /// The fence delay's end, and while a membership forms the moment the contact lease of
    /// a node heard from runs out (the self-fence may then act): both on time, not on the
    /// executive's next regular tick.
    fn next_timer(&self) -> Option<u64> {
        let fence = self.fence_timer.map(|(_, at)| at);
        let lease =
            if self.gathering == Some(false) && !self.defects.no_lease && !self.rules.ignore_quorum
            {
                let lease = self.cfg.lease_ms * MS;
                self.contact
                    .values()
                    .map(|t| t + lease + 1)
                    .filter(|at| *at > self.last_tick)
                    .min()
            } else {
                None
            };
        fence.into_iter().chain(lease).min()
    }

    fn tick(&mut self, cx: &mut Context<'_>) {
        let now = Self::now(cx);
        let gap = now.saturating_sub(self.last_tick);
        if self.last_tick != 0
            && gap >= (self.cfg.freeze_ms + self.cfg.fence_ms) * MS
            && !self.defects.no_fence
        {
            // Frozen for longer than the others need to see this node gone (at least the
            // token timeout, `freeze_ms`) and then wait the fence delay: they may have given
            // this node's SIs to another SU already. Its SUs stop before anything else
            // happens here.
            let serving: Vec<SuIx> = self
                .local
                .iter()
                .filter(|(_, l)| {
                    !l.held.is_empty()
                        || !l.flight.is_empty()
                        || l.comps.iter().any(|c| !c.holds.is_empty())
                })
                .map(|(s, _)| *s)
                .collect();
            if !serving.is_empty() {
                error!(
                    "amf: this executive was frozen for {} ms (token timeout {} ms + fence delay {} ms): its SUs with assignments fail over",
                    gap / MS,
                    self.cfg.freeze_ms,
                    self.cfg.fence_ms
                );
            }
            for su in serving {
                self.failover_su(cx, su);
            }
            // What this node knows of the cluster is stale until its probe comes back
            // (below) or the next sync.
        }
        if self.last_tick != 0
            && gap >= self.cfg.freeze_ms * MS
            && self.stale.is_none()
            && !self.defects.no_fence
        {
            // The ring may have moved on meanwhile: act again only once this node's own
            // message comes back in order (or at the next sync).
            let nonce = now;
            self.stale = Some(nonce);
            warn!(
                "amf: this executive was not scheduled for {} ms: it acts again once its view is confirmed current",
                gap / MS
            );
            self.submit(cx, &RingMessage::Probe { nonce });
        }
        self.last_tick = now;
        self.lease(cx);
        if let Some((ring, at)) = self.fence_timer
            && now >= at
        {
            self.fence_timer = None;
            if ring == cx.ring() {
                self.submit(
                    cx,
                    &RingMessage::Fenced {
                        rep: ring.rep.0,
                        seq: ring.seq,
                    },
                );
            }
        }
        let sus: Vec<SuIx> = self.local.keys().copied().collect();
        for su in sus {
            let n = self.local[&su].comps.len();
            for c in 0..n {
                let comp = &self.local[&su].comps[c];
                match comp.state {
                    CState::Instantiating { .. } => {
                        if comp.deadline.is_some_and(|d| now > d) {
                            self.instantiation_failed(cx, su, c);
                        }
                        continue;
                    }
                    CState::Registered => {}
                    _ => continue,
                }
                let Some(conn) = comp.conn else { continue };
                for k in 0..comp.hc.len() {
                    let h = &self.local[&su].comps[c].hc[k];
                    match (h.invoker, h.outstanding) {
                        (HealthCheckInvoker::Amf, Some((_, deadline))) if now > deadline => {
                            let r = h.recovery;
                            self.stats.healthcheck_failures += 1;
                            self.fail(cx, su, c, Some(r), "health check not answered in time");
                            break;
                        }
                        (HealthCheckInvoker::Amf, None) if now >= h.due => {
                            let inv = self.next_inv;
                            self.next_inv += 1;
                            self.invocations
                                .insert(inv, Inv::Healthcheck { su, comp: c, hc: k });
                            let key = h.key.clone();
                            let h = &mut self.local.get_mut(&su).expect("local SU").comps[c].hc[k];
                            h.outstanding = Some((inv, now + h.max));
                            h.due = now + h.period;
                            cx.callback(
                                conn,
                                &Callback::Healthcheck {
                                    invocation: inv,
                                    key,
                                },
                            );
                        }
                        (HealthCheckInvoker::Component, _) if now > h.due => {
                            let r = h.recovery;
                            self.stats.healthcheck_failures += 1;
                            self.fail(cx, su, c, Some(r), "health check not confirmed in time");
                            break;
                        }
                        _ => {}
                    }
                }
            }
            // Callbacks not answered in time.
            let late: Vec<usize> = self.local[&su]
                .flight
                .values()
                .filter(|f| now > f.deadline)
                .flat_map(|f| f.waiting.iter().copied())
                .collect::<BTreeSet<_>>()
                .into_iter()
                .collect();
            for c in late {
                self.fail(cx, su, c, None, "did not answer a CSI callback in time");
            }
        }
        self.drive(cx);
    }

    fn stats(&self, v: &mut dyn Visitor) {
        let s = &self.stats;
        v.counter("amf_instantiations", s.instantiations);
        v.counter("amf_instantiation_failures", s.instantiation_failures);
        v.counter("amf_cleanups", s.cleanups);
        v.counter("amf_failures", s.failures);
        v.counter("amf_healthcheck_failures", s.healthcheck_failures);
        v.counter("amf_component_restarts", s.component_restarts);
        v.counter("amf_su_restarts", s.su_restarts);
        v.counter("amf_su_failovers", s.su_failovers);
        v.counter("amf_node_failovers", s.node_failovers);
        v.counter("amf_node_failfasts", s.node_failfasts);
        v.counter("amf_confirmed", s.confirmed);
        v.counter("amf_model_mismatch", s.model_mismatch);
    }
}
