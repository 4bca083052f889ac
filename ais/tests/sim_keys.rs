//! Online rekeying under the seeded simulator: every simulated node runs an [`ExecCore`] with
//! the key service above a Totem core that seals its frames (AES-256-GCM, the simulator's
//! shared key as epoch 0). Administrators ask for rekeys at a few random moments, several nodes
//! at nearly the same time (concurrent rekeys), and background messages keep the ring busy.
//! The executive acts on what Totem delivers after a random delay of up to 2 ms, as `aisexec`
//! does on its own thread; token pacing (1 ms) is on in half the runs; links duplicate and
//! reorder frames; in a third of the runs one node crashes for good.
//!
//! The checker's properties (each run, beside the simulator's own checks and its EVS checker
//! on the Totem log):
//! 1. **stable**: a rekey changes no membership: once a node was in a ring of every node, no
//!    regular configuration it installs leaves out a node that had not crashed;
//! 2. **agreement**: the nodes took the same secret for each epoch, epochs one by one from 1;
//! 3. **completion**: at the end every live node seals with the newest epoch and opens no
//!    other (the previous one retired, no next one pending);
//! 4. **answers**: every rekey request of a live node was answered OK, TRY_AGAIN or
//!    BAD_OPERATION, and each epoch was answered OK once (at most once if a node crashed);
//! 5. **key steps**: the Totem core accepted every key step it was given.
//!
//! `the_checker_catches_a_member_that_switches_at_delivery` runs the defect that made
//! `security.rs`'s rekey test fail in CI: each member sealed with the new epoch as soon as it
//! delivered the rekey, so the first one to deliver (holding the token for its pace) sent the
//! token under an epoch the next member did not know yet.
//!
//! A failure prints its seed; `AIS_SIM_SEED=N cargo test -p ais --test sim_keys` replays one
//! schedule, `AIS_SIM_SEEDS=N` runs N (the default is sized for CI).

mod common;

use std::cell::RefCell;
use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::rc::Rc;

use ais_core::exec::{Effect, ExecCore, Origin};
use ais_core::services::keys::{Keys, KeysDefects};
use ais_proto::admin::{self, AdminProtocol};
use ais_proto::ipc::{AisError, Nothing, Protocol, Reply, Request};
use bytes::Bytes;
use rand::rngs::StdRng;
use rand::{Rng, RngCore, SeedableRng};
use totem_dpdk::srp::{ConfigKind, Event, SubmitError, Totem};
use totem_dpdk::{DeliveryKind, Duration, Instant, MsgId, NodeId, Priority};
use totem_sim::net::Faults;
use totem_sim::sim::{App, AppSubmit, CoreCall, NodeFault, NodeFaultKinds, Schedule, Sim, sim_key};

/// The administrator's connection on every node.
const ADMIN: u64 = 1;
/// Background messages start with this; the application takes them out before the core.
const FILLER: &[u8] = b"sim-keys filler ";
/// Longest delay between a Totem event and the executive acting on it.
const EXEC_DELAY_NS: u64 = 2_000_000;
/// Administrators ask and background messages go out before this time.
const STOP_AT: Instant = Instant(3_000_000_000);

/// A regular configuration a node installed.
struct Installed {
    node: u32,
    at: Instant,
    members: Vec<u32>,
}

/// A Totem core's key epochs: (sealing, previous, next).
type KeyEpochs = (Option<u32>, Option<u32>, Option<u32>);

/// What the nodes did and were told.
#[derive(Default)]
struct Observed {
    /// Per node, the key epochs written to its key file in order, with the secret.
    persisted: BTreeMap<u32, Vec<(u32, Vec<u8>)>>,
    /// Per node: (request id, answer; `None` until answered).
    requests: BTreeMap<u32, BTreeMap<u64, Option<Result<(), AisError>>>>,
    /// Per node, its Totem core's key epochs at the last look: (sealing, previous, next).
    keys: BTreeMap<u32, KeyEpochs>,
    configs: Vec<Installed>,
    /// Key steps the Totem core refused.
    refused: Vec<String>,
}

enum Out {
    Submit(AppSubmit),
    Call(CoreCall),
}

struct KeysApp {
    core: ExecCore,
    node: u32,
    nodes: u32,
    rng: StdRng,
    /// Totem events waiting for the executive, with the time it acts on each.
    inbox: VecDeque<(Instant, Event)>,
    out: VecDeque<Out>,
    origins: BTreeMap<u64, Origin>,
    next_tag: u64,
    /// When this node's administrator asks for a rekey.
    asks: VecDeque<Instant>,
    next_request: u64,
    /// When this node sends a background message.
    fillers: VecDeque<Instant>,
    /// The node that crashes, and when.
    crash: Option<(u32, Instant)>,
    /// This node was in a ring of every node that had not crashed.
    full_ring: bool,
    observed: Rc<RefCell<Observed>>,
    now: Instant,
}

impl KeysApp {
    fn new(
        node: NodeId,
        nodes: u32,
        seed: u64,
        moments: &[Instant],
        crash: Option<(u32, Instant)>,
        defects: KeysDefects,
        observed: Rc<RefCell<Observed>>,
    ) -> KeysApp {
        let mut rng = StdRng::seed_from_u64(seed.wrapping_mul(31).wrapping_add(u64::from(node.0)));
        // Node 1 asks at the first moment; every node at each moment with probability 1/2,
        // within 3 ms of it: concurrent requests.
        let mut asks = Vec::new();
        for (i, &m) in moments.iter().enumerate() {
            if (node.0 == 1 && i == 0) || rng.random_bool(0.5) {
                asks.push(m + Duration(rng.random_range(0..3_000_000)));
            }
        }
        asks.sort();
        let mut fillers: Vec<Instant> = (0..rng.random_range(20..60))
            .map(|_| Instant(rng.random_range(0..STOP_AT.0)))
            .collect();
        fillers.sort();
        let mut app = KeysApp {
            core: ExecCore::new(
                node,
                vec![Box::new(Keys::with_defects(Some(sim_key()), defects))],
            ),
            node: node.0,
            nodes,
            rng,
            inbox: VecDeque::new(),
            out: VecDeque::new(),
            origins: BTreeMap::new(),
            next_tag: 1,
            asks: asks.into(),
            next_request: 2,
            fillers: fillers.into(),
            crash,
            full_ring: false,
            observed,
            now: Instant(0),
        };
        app.core.connected(ADMIN, 100);
        app.core.request_value(
            ADMIN,
            1,
            &Request::<Nothing>::Hello {
                version: ais_proto::ipc::VERSION,
                service: AdminProtocol::ID,
            },
        );
        app.effects();
        app
    }

    /// A Totem call, then a look at the core's key epochs.
    fn call(
        &mut self,
        what: &'static str,
        step: impl FnOnce(&mut Totem) -> Result<(), String> + 'static,
    ) {
        let observed = Rc::clone(&self.observed);
        let node = self.node;
        self.out.push_back(Out::Call(Box::new(move |t: &mut Totem| {
            let result = step(t);
            let mut o = observed.borrow_mut();
            if let Err(e) = result {
                o.refused.push(format!("node {node}: {what}: {e}"));
            }
            let (previous, next) = t.other_key_epochs();
            o.keys.insert(node, (t.key_epoch(), previous, next));
        })));
    }

    fn effects(&mut self) {
        while let Some(e) = self.core.poll_effect() {
            if let Some((ADMIN, id, reply)) = e.reply::<Nothing>() {
                if id >= 2 {
                    let answer = match reply {
                        Reply::Ok => Ok(()),
                        Reply::Error(e) => Err(e),
                        other => panic!("a rekey is answered OK or an error: {other:?}"),
                    };
                    self.observed
                        .borrow_mut()
                        .requests
                        .entry(self.node)
                        .or_default()
                        .insert(id, Some(answer));
                }
                continue;
            }
            match e {
                Effect::Submit { origin, kind, msg } => {
                    let tag = self.next_tag;
                    self.next_tag += 1;
                    self.origins.insert(tag, origin);
                    self.out.push_back(Out::Submit(AppSubmit {
                        tag,
                        prio: Priority::default(),
                        kind,
                        payload: msg,
                    }));
                }
                Effect::NeedRandom {
                    service,
                    conn,
                    id,
                    len,
                } => {
                    let mut bytes = vec![0; len];
                    self.rng.fill_bytes(&mut bytes);
                    self.core.random(service, conn, id, &bytes);
                }
                Effect::PersistKey(k) => {
                    self.observed
                        .borrow_mut()
                        .persisted
                        .entry(self.node)
                        .or_default()
                        .push((k.epoch, k.secret));
                }
                Effect::AcceptKey(k) => self.call("accept", move |t| {
                    t.accept_key(k).map_err(|e| e.to_string())
                }),
                Effect::InstallKey(k) => self.call("install", move |t| {
                    t.install_key(k).map_err(|e| e.to_string())
                }),
                Effect::RetirePreviousKey => self.call("retire", |t| {
                    t.retire_previous_key();
                    Ok(())
                }),
                Effect::Send { .. } => {}
                other => panic!("the key service makes no {other:?}"),
            }
        }
    }

    /// The executive acts on what is due.
    fn act(&mut self) {
        while self.inbox.front().is_some_and(|(at, _)| *at <= self.now) {
            let (_, event) = self.inbox.pop_front().expect("checked");
            if let Event::Deliver(d) = &event
                && d.payload.starts_with(FILLER)
            {
                continue;
            }
            if let Event::ConfigChange(c) = &event
                && c.kind == ConfigKind::Regular
            {
                let members: Vec<u32> = c.members.iter().map(|m| m.0).collect();
                if is_full(&members, self.nodes, self.crash, self.now) {
                    self.full_ring = true;
                }
                self.observed.borrow_mut().configs.push(Installed {
                    node: self.node,
                    at: self.now,
                    members,
                });
            }
            self.core.totem(&event);
            self.effects();
        }
        // Rekeys are asked for once this node was in a ring of every node (a node outside the
        // ring at a rekey cannot come back: `docs/security.md`).
        while self.full_ring && self.asks.front().is_some_and(|at| *at <= self.now) {
            self.asks.pop_front();
            let id = self.next_request;
            self.next_request += 1;
            self.observed
                .borrow_mut()
                .requests
                .entry(self.node)
                .or_default()
                .insert(id, None);
            self.core.request_value(ADMIN, id, &admin::Request::Rekey);
            self.effects();
        }
        while self.fillers.front().is_some_and(|at| *at <= self.now) {
            self.fillers.pop_front();
            let mut payload = FILLER.to_vec();
            let len = self.rng.random_range(1..3_000);
            payload.extend((0..len).map(|i| i as u8));
            let kind = if self.rng.random_bool(0.3) {
                DeliveryKind::Safe
            } else {
                DeliveryKind::Agreed
            };
            self.out.push_back(Out::Submit(AppSubmit {
                tag: 0,
                prio: Priority::default(),
                kind,
                payload: Bytes::from(payload),
            }));
        }
        self.core.tick(self.now.as_nanos());
        self.effects();
        self.call("look", |_| Ok(()));
    }

    /// Nothing pending at the Totem core's keys: no rekey half done.
    fn keys_settled(&self) -> bool {
        self.observed
            .borrow()
            .keys
            .get(&self.node)
            .is_none_or(|&(_, previous, next)| previous.is_none() && next.is_none())
    }
}

impl App for KeysApp {
    fn event(&mut self, now: Instant, event: &Event) {
        if !matches!(event, Event::Deliver(_) | Event::ConfigChange(_)) {
            return;
        }
        // In order, each after a random delay.
        let last = self.inbox.back().map_or(now, |(at, _)| *at);
        let at = (now + Duration(self.rng.random_range(0..=EXEC_DELAY_NS))).max(last);
        self.inbox.push_back((at, event.clone()));
    }

    fn wake(&mut self, now: Instant, _rng: &mut dyn RngCore) {
        self.now = now;
        self.act();
    }

    fn poll_submit(&mut self) -> Option<AppSubmit> {
        match self.out.front() {
            Some(Out::Submit(_)) => match self.out.pop_front() {
                Some(Out::Submit(s)) => Some(s),
                _ => None,
            },
            _ => None,
        }
    }

    fn poll_call(&mut self) -> Option<CoreCall> {
        match self.out.front() {
            Some(Out::Call(_)) => match self.out.pop_front() {
                Some(Out::Call(c)) => Some(c),
                _ => None,
            },
            _ => None,
        }
    }

    fn submitted(&mut self, now: Instant, tag: u64, result: Result<MsgId, SubmitError>) {
        self.now = now;
        if tag == 0 {
            // A background message: refused ones are simply not sent.
            return;
        }
        let origin = self.origins.remove(&tag).expect("a known tag");
        self.core.submitted(origin, result);
        self.effects();
    }

    fn next_wake(&self) -> Option<Instant> {
        let ticking = (!self.is_idle()).then_some(self.now + Duration::from_millis(10));
        [
            self.inbox.front().map(|(at, _)| *at),
            self.asks.front().copied(),
            self.fillers.front().copied(),
            ticking,
        ]
        .into_iter()
        .flatten()
        .min()
    }

    fn is_idle(&self) -> bool {
        self.now >= STOP_AT
            && self.inbox.is_empty()
            && self.out.is_empty()
            && self.asks.is_empty()
            && self.fillers.is_empty()
            && self.core.is_idle()
            && self.keys_settled()
    }
}

/// `members` holds every node that had not crashed at `at`.
fn is_full(members: &[u32], nodes: u32, crash: Option<(u32, Instant)>, at: Instant) -> bool {
    (1..=nodes).all(|n| members.contains(&n) || crash.is_some_and(|(c, t)| c == n && t <= at))
}

/// A schedule drawn from `seed`: 2–5 nodes, frames sealed, links duplicating and reordering,
/// token pacing in half the runs, one node crashing for good in a third.
fn schedule(seed: u64) -> Schedule {
    let faults = Faults {
        dup: 0.02,
        reorder: 0.05,
        ..Faults::default()
    };
    let mut rng = StdRng::seed_from_u64(seed ^ 0x6b65_7973);
    let crash = rng.random_bool(1.0 / 3.0);
    let kinds = NodeFaultKinds {
        crash,
        ..NodeFaultKinds::default()
    };
    let mut s = Schedule::random(seed, 2..=5, faults, kinds);
    // At most one crash, never restarted (a restarted node would start from the first key).
    s.node_faults
        .retain(|(_, f)| matches!(f, NodeFault::Crash(_)));
    s.node_faults.truncate(1);
    s.late.clear();
    s.crypto = true;
    if rng.random_bool(0.5) {
        s.token_pace = Duration::from_millis(1);
    }
    s.converge_bound = Duration::from_millis(10_000);
    s
}

/// The moments administrators ask for rekeys: 1 to 3 in 0.3–2.5 s.
fn moments(seed: u64) -> Vec<Instant> {
    let mut rng = StdRng::seed_from_u64(seed ^ 0x7265_6b65);
    let mut m: Vec<Instant> = (0..rng.random_range(1..=3))
        .map(|_| Instant(rng.random_range(300_000_000..2_500_000_000)))
        .collect();
    m.sort();
    m
}

/// Which property a violation breaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Property {
    Stable,
    Agreement,
    Completion,
    Answers,
    KeySteps,
}

#[derive(Debug)]
struct Violation {
    property: Property,
    detail: String,
}

impl std::fmt::Display for Violation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "[{:?}] {}", self.property, self.detail)
    }
}

/// The key service's checker.
fn check(observed: &Observed, nodes: u32, crash: Option<(u32, Instant)>) -> Vec<Violation> {
    let mut v = Vec::new();
    let mut bad = |property, detail: String| v.push(Violation { property, detail });
    let crashed = |n: u32| crash.is_some_and(|(c, _)| c == n);
    let live: Vec<u32> = (1..=nodes).filter(|&n| !crashed(n)).collect();
    // 1. Stable.
    let mut full: BTreeSet<u32> = BTreeSet::new();
    for c in &observed.configs {
        if full.contains(&c.node) {
            for m in 1..=nodes {
                let down = crash.is_some_and(|(n, t)| n == m && t <= c.at);
                if !down && !c.members.contains(&m) {
                    bad(
                        Property::Stable,
                        format!(
                            "node {} installed members {:?} at {} ms without node {m}, which had not crashed",
                            c.node,
                            c.members,
                            c.at.0 / 1_000_000
                        ),
                    );
                }
            }
        }
        if is_full(&c.members, nodes, crash, c.at) {
            full.insert(c.node);
        }
    }
    // 2. Agreement.
    let mut secrets: BTreeMap<u32, (&[u8], u32)> = BTreeMap::new();
    for (node, keys) in &observed.persisted {
        for (i, (epoch, secret)) in keys.iter().enumerate() {
            if *epoch != i as u32 + 1 {
                bad(
                    Property::Agreement,
                    format!("node {node} took epoch {epoch} as its key number {}", i + 1),
                );
            }
            match secrets.get(epoch) {
                Some((s, other)) if *s != secret.as_slice() => bad(
                    Property::Agreement,
                    format!("nodes {other} and {node} took different secrets for epoch {epoch}"),
                ),
                Some(_) => {}
                None => {
                    secrets.insert(*epoch, (secret, *node));
                }
            }
        }
    }
    // 3. Completion.
    let newest = secrets.keys().next_back().copied().unwrap_or(0);
    for n in &live {
        let got = observed
            .keys
            .get(n)
            .copied()
            .unwrap_or((Some(0), None, None));
        if got != (Some(newest), None, None) {
            bad(
                Property::Completion,
                format!(
                    "node {n} ends sealing with epoch {:?} (previous {:?}, next {:?}); the newest is {newest}",
                    got.0, got.1, got.2
                ),
            );
        }
    }
    // 4. Answers.
    let mut ok = 0;
    for (node, requests) in &observed.requests {
        for (id, answer) in requests {
            match answer {
                None if !crashed(*node) => bad(
                    Property::Answers,
                    format!("node {node}'s rekey request {id} was never answered"),
                ),
                Some(Ok(())) => ok += 1,
                Some(Err(AisError::TryAgain | AisError::BadOperation)) | None => {}
                Some(Err(e)) => bad(
                    Property::Answers,
                    format!("node {node}'s rekey request {id} was answered {e:?}"),
                ),
            }
        }
    }
    let expected = if crash.is_none() {
        newest..=newest
    } else {
        newest.saturating_sub(1)..=newest
    };
    if !expected.contains(&ok) {
        bad(
            Property::Answers,
            format!("{ok} rekey requests answered OK for {newest} new epochs"),
        );
    }
    // 5. Key steps.
    for r in &observed.refused {
        bad(Property::KeySteps, r.clone());
    }
    v
}

struct Run {
    totem: Vec<String>,
    keys: Vec<Violation>,
    epochs: u32,
}

fn run(seed: u64, defects: KeysDefects) -> Run {
    let schedule = schedule(seed);
    let moments = moments(seed);
    let nodes = schedule.nodes;
    let observed = Rc::new(RefCell::new(Observed::default()));
    let factory_observed = Rc::clone(&observed);
    let crash = schedule.node_faults.iter().find_map(|(t, f)| match f {
        NodeFault::Crash(n) => Some((*n, *t)),
        _ => None,
    });
    let sim = Sim::with_apps(
        schedule.clone(),
        Box::new(move |node, _incarnation| {
            Box::new(KeysApp::new(
                node,
                nodes,
                seed,
                &moments,
                crash,
                defects,
                Rc::clone(&factory_observed),
            ))
        }),
    );
    let outcome = sim.run();
    let totem = common::sim::totem_violations(&outcome, &schedule);
    let observed = observed.borrow();
    let keys = check(&observed, nodes, crash);
    let epochs = observed
        .persisted
        .values()
        .filter_map(|k| k.last().map(|(e, _)| *e))
        .max()
        .unwrap_or(0);
    Run {
        totem,
        keys,
        epochs,
    }
}

#[test]
fn rekeys_change_no_membership_and_every_member_ends_on_the_newest_key() {
    let seeds = common::sim::seeds(300);
    let runs = seeds.end - seeds.start;
    let mut epochs = 0u64;
    common::sim::assert_every_seed_passes(seeds, |seed| {
        let r = run(seed, KeysDefects::default());
        epochs += u64::from(r.epochs);
        r.totem
            .into_iter()
            .chain(r.keys.iter().map(ToString::to_string))
            .collect()
    });
    // Node 1 asks in every run once it is in a full ring: every run rekeys.
    assert!(epochs >= runs, "{epochs} epochs in {runs} runs");
}

/// Members that seal with the new epoch as soon as they deliver the rekey (the defect behind
/// a CI failure of `security.rs`): a member that switched sends frames the next member cannot
/// open yet, the ring breaks, and the checker says so.
#[test]
fn the_checker_catches_a_member_that_switches_at_delivery() {
    let defects = KeysDefects {
        switch_at_delivery: true,
    };
    let caught = (0..60)
        .filter(|&seed| {
            run(seed, defects)
                .keys
                .iter()
                .any(|v| v.property == Property::Stable)
        })
        .count();
    assert!(caught > 0, "no schedule showed the defect");
}
