//! Shelf events under the seeded simulator: every simulated node runs an [`ExecCore`] with
//! the shelf service; a simulated ATCA shelf writes hot-swap and sensor events to its SEL
//! (one every 30–150 ms, the SEL cleared now and then, so record ids are reused with later
//! timestamps), and the shelf watcher of every node, or of some nodes, hands them to its
//! executive with its own delay (0–400 ms), losing some of them from its own view (10%),
//! reporting some again (a reconnect reading the SEL again), and re-reading the last second
//! of the SEL when its executive (re)starts. Crashes, restarts, partitions, heals and message
//! loss come from the simulator's random schedules. The shelf checker
//! (`ais_core::services::shelf::checker`) judges every acceptance and every sync.
//!
//! A failure prints its seed; `AIS_SIM_SEED=N cargo test -p ais --test sim_shelf` replays
//! one schedule, `AIS_SIM_SEEDS=N` runs N.

mod common;

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::sync::{Arc, Mutex};

use ais_core::exec::{Effect, ExecCore};
use ais_core::services::shelf::checker::{self, Observation, Property};
use ais_core::services::shelf::{
    Observer, Shelf, ShelfConfig, ShelfDefects, ShelfEvent, ShelfEventKind, ShelfKey,
};
use ais_proto::ipc::{Nothing, Protocol};
use ais_proto::shelf::{Request, ShelfProtocol};
use bytes::Bytes;
use rand::RngCore;
use totem_dpdk::srp::{Event, SubmitError};
use totem_dpdk::{Duration, Instant, MsgId, NodeId, RingId};
use totem_sim::sim::{App, AppSubmit, NodeFault, Schedule, Sim};

const CONN: u64 = 1;
const MS: u64 = 1_000_000;
const CAPACITY: usize = 4096;

#[derive(Default)]
struct Shared {
    observations: Vec<Observation>,
    accepted: usize,
    observed: usize,
}

type Log = Arc<Mutex<Shared>>;

struct Watch {
    log: Log,
    inc: u32,
}

impl Observer for Watch {
    fn accepted(&mut self, node: NodeId, ring: RingId, _from: NodeId, event: &ShelfEvent) {
        let mut log = self.log.lock().unwrap();
        log.accepted += 1;
        log.observations.push(Observation::Accepted {
            node: node.0,
            inc: self.inc,
            ring: (ring.rep.0, ring.seq),
            key: event.key.clone(),
        });
    }

    fn activated(&mut self, node: NodeId, ring: RingId, members: &[NodeId], seen: &[ShelfKey]) {
        self.log
            .lock()
            .unwrap()
            .observations
            .push(Observation::Activated {
                node: node.0,
                inc: self.inc,
                ring: (ring.rep.0, ring.seq),
                members: members.iter().map(|m| m.0).collect(),
                seen: seen.to_vec(),
            });
    }
}

/// splitmix64: the per-node, per-event draws, a pure function of the seed.
fn mix(mut x: u64) -> u64 {
    x = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
    x = (x ^ (x >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    x ^ (x >> 31)
}

/// The simulated shelf: its SEL entries in time order, and how each node's watcher sees it.
#[derive(Debug, Clone)]
struct Shelf_ {
    seed: u64,
    /// (time written, event).
    sel: Vec<(Instant, ShelfEvent)>,
    /// Per node: watches the shelf, and its delay.
    watchers: BTreeMap<u32, Duration>,
}

impl Shelf_ {
    fn new(seed: u64, nodes: u32, until: Instant) -> Shelf_ {
        let mut sel = Vec::new();
        let mut t = Instant(0) + Duration::from_millis(200);
        let mut record: u16 = 1;
        let mut k = 0u64;
        while t < until {
            let r = mix(seed ^ (k << 20));
            if r.is_multiple_of(40) {
                // The SEL is cleared: record ids start again.
                record = 1;
            }
            let slot = (r >> 8) as u8 % 14 + 1;
            let kind = if (r >> 16).is_multiple_of(4) {
                ShelfEventKind::Sensor {
                    slot,
                    sensor: (r >> 20) as u8,
                    sensor_type: 1,
                    assertion: true,
                    event_type: 0x01,
                    offset: 9,
                }
            } else {
                ShelfEventKind::HotSwap {
                    slot,
                    fru: 0,
                    previous: (r >> 24) as u8 % 5,
                    state: (r >> 28) as u8 % 5,
                    cause: 0,
                }
            };
            sel.push((
                t,
                ShelfEvent {
                    key: ShelfKey {
                        shelf: Bytes::from_static(b"sim-shelf"),
                        record,
                        // Seconds on the shelf manager's clock: later for every entry.
                        timestamp: 1_000_000 + k as u32,
                    },
                    kind,
                },
            ));
            record = record.wrapping_add(1).max(1);
            k += 1;
            t = t + Duration::from_millis(30 + (r >> 32) % 120);
        }
        // All nodes watch in a third of the runs, else each node with probability 2/3 (at
        // least one).
        let all = seed.is_multiple_of(3);
        let mut watchers = BTreeMap::new();
        for n in 1..=nodes {
            let r = mix(seed ^ 0xa11 ^ u64::from(n) << 40);
            if all || !r.is_multiple_of(3) {
                watchers.insert(n, Duration::from_millis((r >> 8) % 400));
            }
        }
        if watchers.is_empty() {
            watchers.insert(1, Duration::from_millis(50));
        }
        Shelf_ {
            seed,
            sel,
            watchers,
        }
    }

    /// Whether `node`'s watcher misses entry `i` (10%), or reports it twice (5%).
    fn view(&self, node: u32, i: usize) -> (bool, bool) {
        let r = mix(self.seed ^ (u64::from(node) << 32) ^ (i as u64) << 8 ^ 0x51e1);
        (r.is_multiple_of(10), (r >> 8).is_multiple_of(20))
    }
}

struct ShelfApp {
    core: ExecCore,
    log: Log,
    shelf: Arc<Shelf_>,
    node: u32,
    inc: u32,
    submits: common::sim::Submits,
    stop_at: Instant,
    now: Instant,
    started: Option<Instant>,
    /// Reports due: (when, SEL index), in time order.
    due: VecDeque<(Instant, usize)>,
    next_id: u64,
}

impl ShelfApp {
    fn new(
        node: NodeId,
        inc: u32,
        log: Log,
        shelf: Arc<Shelf_>,
        defects: ShelfDefects,
        stop_at: Instant,
    ) -> ShelfApp {
        log.lock()
            .unwrap()
            .observations
            .push(Observation::Started { node: node.0, inc });
        let service = Shelf::with_defects(ShelfConfig { capacity: CAPACITY }, defects)
            .with_observer(Box::new(Watch {
                log: Arc::clone(&log),
                inc,
            }));
        let mut app = ShelfApp {
            core: ExecCore::new(node, vec![Box::new(service)]),
            log,
            shelf,
            node: node.0,
            inc,
            submits: common::sim::Submits::default(),
            stop_at,
            now: Instant(0),
            started: None,
            due: VecDeque::new(),
            next_id: 2,
        };
        app.core.connected(CONN, 100);
        app.core.request_value(
            CONN,
            1,
            &ais_proto::ipc::Request::<Nothing>::Hello {
                version: ais_proto::ipc::VERSION,
                service: ShelfProtocol::ID,
            },
        );
        app.effects();
        app
    }

    /// The watcher's schedule of reports, from its start: the last second of the SEL read
    /// again, then every entry after its delay, some missed and some reported twice.
    fn plan(&mut self, start: Instant) {
        let Some(&delay) = self.shelf.watchers.get(&self.node) else {
            return;
        };
        let from = Instant(start.as_nanos().saturating_sub(1_000 * MS));
        let mut due = Vec::new();
        for (i, (t, _)) in self.shelf.sel.iter().enumerate() {
            if *t < from {
                continue;
            }
            let (missed, twice) = self.shelf.view(self.node, i);
            if missed {
                continue;
            }
            let at = (*t + delay).max(start);
            due.push((at, i));
            if twice {
                due.push((at + Duration::from_millis(500), i));
            }
        }
        due.sort();
        self.due = due.into();
    }

    fn report(&mut self) {
        while let Some(&(at, i)) = self.due.front() {
            if at > self.now {
                break;
            }
            self.due.pop_front();
            let event = self.shelf.sel[i].1.clone();
            {
                let mut log = self.log.lock().unwrap();
                log.observed += 1;
                log.observations.push(Observation::Observed {
                    node: self.node,
                    inc: self.inc,
                    key: event.key.clone(),
                });
            }
            let id = self.next_id;
            self.next_id += 1;
            self.core.request_value(CONN, id, &Request::Observe(event));
            self.effects();
        }
    }

    fn effects(&mut self) {
        while let Some(e) = self.core.poll_effect() {
            match e {
                Effect::Submit { origin, kind, msg } => self.submits.push(origin, kind, msg),
                Effect::Send { .. } => {}
                other => panic!("the shelf service makes no {other:?}"),
            }
        }
    }

    fn clock(&mut self, now: Instant) {
        self.now = self.now.max(now);
        if self.started.is_none() {
            self.started = Some(now);
            self.plan(now);
        }
        self.core.tick(now.as_nanos());
    }
}

impl App for ShelfApp {
    fn event(&mut self, now: Instant, event: &Event) {
        self.clock(now);
        self.core.totem(event);
        self.effects();
    }

    fn wake(&mut self, now: Instant, _rng: &mut dyn RngCore) {
        self.clock(now);
        self.effects();
        self.report();
    }

    fn poll_submit(&mut self) -> Option<AppSubmit> {
        self.submits.pop()
    }

    fn submitted(&mut self, _now: Instant, tag: u64, result: Result<MsgId, SubmitError>) {
        self.submits.submitted(&mut self.core, tag, result);
        self.effects();
    }

    fn next_wake(&self) -> Option<Instant> {
        (!self.is_idle()).then_some(self.now + Duration::from_millis(10))
    }

    fn is_idle(&self) -> bool {
        self.now >= self.stop_at
            && self.due.is_empty()
            && self.core.is_idle()
            && self.submits.is_empty()
    }
}

struct Run {
    violations: Vec<String>,
    shelf: Vec<checker::Violation>,
    accepted: usize,
    observed: usize,
    sel: usize,
}

/// The incarnations alive at the end of `schedule` (node → incarnation).
fn survivors(schedule: &Schedule, observations: &[Observation]) -> BTreeMap<u32, u32> {
    let mut alive: BTreeSet<u32> = (1..=schedule.nodes)
        .filter(|n| !schedule.late.contains(n))
        .collect();
    for (_, f) in &schedule.node_faults {
        match f {
            NodeFault::Crash(n) => {
                alive.remove(n);
            }
            NodeFault::Restart(n) | NodeFault::Start(n) => {
                alive.insert(*n);
            }
            _ => {}
        }
    }
    let mut last: BTreeMap<u32, u32> = BTreeMap::new();
    for o in observations {
        if let Observation::Started { node, inc } = o {
            last.insert(*node, *inc);
        }
    }
    last.into_iter()
        .filter(|(n, _)| alive.contains(n))
        .collect()
}

fn run(seed: u64, defects: ShelfDefects) -> Run {
    if std::env::var_os("AIS_SIM_TRACE").is_some() {
        let _ = tracing_subscriber::fmt()
            .with_env_filter("ais_core=debug")
            .with_writer(std::io::stderr)
            .try_init();
    }
    let schedule = common::sim::random_schedule(seed);
    // The shelf writes events until 3 s or the end of the faults, whichever is later; the
    // watchers have reported everything a second after that.
    let events_end = schedule
        .faults_end()
        .max(Instant(0) + Duration::from_millis(3_000));
    let stop_at = events_end + Duration::from_millis(1_000);
    let shelf = Arc::new(Shelf_::new(seed, schedule.nodes, events_end));
    let log: Log = Arc::default();
    let factory_log = Arc::clone(&log);
    let factory_shelf = Arc::clone(&shelf);
    let sim = Sim::with_apps(
        schedule.clone(),
        Box::new(move |node, inc| {
            Box::new(ShelfApp::new(
                node,
                inc,
                Arc::clone(&factory_log),
                Arc::clone(&factory_shelf),
                defects,
                stop_at,
            ))
        }),
    );
    let outcome = sim.run();
    let violations = common::sim::totem_violations(&outcome, &schedule);
    let mut shared = log.lock().unwrap();
    if outcome.drained {
        let alive = survivors(&schedule, &shared.observations);
        shared.observations.push(Observation::Survivors { alive });
    }
    if std::env::var_os("AIS_SIM_TRACE").is_some() {
        for o in &shared.observations {
            eprintln!("{o:?}");
        }
        eprintln!("end");
    }
    let mut violations = violations;
    if !outcome.drained {
        violations.push("the run did not drain".into());
    }
    Run {
        violations,
        shelf: checker::check(&shared.observations, CAPACITY),
        accepted: shared.accepted,
        observed: shared.observed,
        sel: shelf.sel.len(),
    }
}

#[test]
fn each_shelf_event_reaches_every_node_once_under_seeded_faults() {
    let (mut accepted, mut observed, mut sel) = (0, 0, 0);
    let seeds = common::sim::seeds(200);
    let runs = seeds.end - seeds.start;
    common::sim::assert_every_seed_passes(seeds, |seed| {
        let r = run(seed, ShelfDefects::default());
        accepted += r.accepted;
        observed += r.observed;
        sel += r.sel;
        r.violations
            .into_iter()
            .chain(r.shelf.iter().map(ToString::to_string))
            .collect()
    });
    eprintln!("{runs} runs: {sel} SEL entries, {observed} reports, {accepted} acceptances");
    // The watchers did report, more copies than events went round, and events were accepted.
    assert!(
        sel as u64 >= 15 * runs,
        "too few SEL entries: {sel} in {runs} runs"
    );
    assert!(observed > sel, "{observed} reports of {sel} entries");
    assert!(
        accepted >= sel / 2,
        "{accepted} acceptances of {sel} entries"
    );
}

fn caught(defects: ShelfDefects, property: Property, seeds: u64) -> usize {
    (0..seeds)
        .filter(|&seed| {
            run(seed, defects)
                .shelf
                .iter()
                .any(|v| v.property == property)
        })
        .count()
}

/// Every copy accepted: the same event twice at a node.
#[test]
fn the_checker_catches_missing_deduplication() {
    let defects = ShelfDefects {
        no_dedup: true,
        ..ShelfDefects::default()
    };
    assert!(caught(defects, Property::NoDuplicate, 5) > 0);
}

/// A seen-set not synchronised to joiners: a restarted or merging node misses keys.
#[test]
fn the_checker_catches_a_seen_set_not_synchronised() {
    let defects = ShelfDefects {
        no_sync: true,
        ..ShelfDefects::default()
    };
    assert!(caught(defects, Property::SyncedSeen, 10) > 0);
}
