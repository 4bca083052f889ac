//! EVT under the seeded simulator: every simulated node runs an [`ExecCore`] with the event
//! service, and a client on each node opens one shared channel, subscribes twice (everything,
//! and a prefix filter), and publishes an event at every wake (random priority, pattern and
//! retention: most not retained, some for 2 s, some for a minute), now and then clearing one
//! of its retained events. It reads its deliveries slowly at times (a window of 4 and a queue
//! of 8), so subscriptions overflow and are told of lost events. Crashes, restarts,
//! partitions, heals and message loss come from the simulator's random schedules. The EVT
//! checker (`ais_core::services::evt::checker`) judges every delivery and the retained
//! events every node held at each sync.
//!
//! A failure prints its seed; `AIS_SIM_SEED=N cargo test -p ais --test sim_evt` replays one
//! schedule, `AIS_SIM_SEEDS=N` runs N (the default is sized for CI; docs/simulator.md has the
//! longer sweep).

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};

use ais_core::exec::{Effect, ExecCore};
use ais_core::services::evt::checker::{self, Observation, Property};
use ais_core::services::evt::{Evt, EvtConfig, EvtDefects, Observer, RetainedInfo};
use ais_proto::evt::{
    Callback, ChannelKey, EventHeader, EvtProtocol, Filter, FilterType, OPEN_CREATE,
    OPEN_PUBLISHER, OPEN_SUBSCRIBER, Request, Response, TIME_END,
};
use ais_proto::ipc::{AisError, Nothing, Protocol, Reply};
use bytes::Bytes;
use rand::RngCore;
use totem_dpdk::srp::{Event, SubmitError};
use totem_dpdk::{Duration, Instant, MsgId, NodeId, RingId};
use totem_sim::sim::{App, AppSubmit, NodeFault, Sim};

const CONN: u64 = 1;
const SEC: u64 = 1_000_000_000;

#[derive(Default)]
struct Shared {
    observations: Vec<Observation>,
    /// Answers a client did not expect.
    unexpected: Vec<String>,
    published: usize,
    delivered: usize,
    lost: usize,
}

type Log = Arc<Mutex<Shared>>;

struct Watch {
    log: Log,
    inc: u32,
}

impl Observer for Watch {
    fn published(&mut self, node: u32, ring: RingId, _key: &ChannelKey, header: &EventHeader) {
        let expires = (header.retention > 0).then(|| {
            if header.retention >= TIME_END {
                u64::MAX
            } else {
                header.publish_time.saturating_add(header.retention)
            }
        });
        self.log
            .lock()
            .unwrap()
            .observations
            .push(Observation::Applied {
                node,
                inc: self.inc,
                ring: (ring.rep.0, ring.seq),
                id: header.id,
                publish_time: header.publish_time,
                priority: header.priority,
                patterns: header.patterns.clone(),
                expires,
            });
    }

    fn activated(
        &mut self,
        node: u32,
        ring: RingId,
        _members: &[NodeId],
        now: u64,
        retained: Vec<RetainedInfo>,
    ) {
        self.log
            .lock()
            .unwrap()
            .observations
            .push(Observation::Activated {
                node,
                inc: self.inc,
                ring: (ring.rep.0, ring.seq),
                now,
                retained,
            });
    }

    fn cleared(&mut self, _node: u32, (id, publish_time): (u64, u64)) {
        self.log
            .lock()
            .unwrap()
            .observations
            .push(Observation::Cleared { id, publish_time });
    }
}

/// What the client does next.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Op {
    Open,
    Subscribe(u32),
    Publish,
    Clear(u64),
}

fn filters(sub: u32) -> Vec<Filter> {
    match sub {
        1 => vec![Filter {
            kind: FilterType::PassAll.code(),
            pattern: Bytes::new(),
        }],
        _ => vec![Filter {
            kind: FilterType::Prefix.code(),
            pattern: Bytes::from_static(b"a"),
        }],
    }
}

struct EvtApp {
    core: ExecCore,
    log: Log,
    node: u32,
    inc: u32,
    submits: common::sim::Submits,
    stop_at: Instant,
    now: Instant,
    channel: u64,
    next: Op,
    inflight: Option<(u64, Op)>,
    next_id: u64,
    /// Deliveries read and not yet acknowledged.
    unacked: u32,
    /// Reads nothing until then.
    slow_until: Instant,
    /// Its retained events, for clears.
    retained: Vec<u64>,
}

impl EvtApp {
    fn new(node: NodeId, inc: u32, log: Log, defects: EvtDefects, stop_at: Instant) -> EvtApp {
        log.lock()
            .unwrap()
            .observations
            .push(Observation::Started { node: node.0, inc });
        let cfg = EvtConfig {
            delivery_window: 4,
            delivery_queue: 8,
            ..EvtConfig::default()
        };
        let service = Evt::with_defects(cfg, defects).with_observer(Box::new(Watch {
            log: Arc::clone(&log),
            inc,
        }));
        let mut app = EvtApp {
            core: ExecCore::new(node, vec![Box::new(service)]),
            log,
            node: node.0,
            inc,
            submits: common::sim::Submits::default(),
            stop_at,
            now: Instant(0),
            channel: 0,
            next: Op::Open,
            inflight: None,
            next_id: 2,
            unacked: 0,
            slow_until: Instant(0),
            retained: Vec::new(),
        };
        app.core.connected(CONN, 100);
        app.core.request_value(
            CONN,
            1,
            &ais_proto::ipc::Request::<Nothing>::Hello {
                version: ais_proto::ipc::VERSION,
                service: EvtProtocol::ID,
            },
        );
        app.effects();
        app
    }

    fn send(&mut self, req: &Request) -> u64 {
        let id = self.next_id;
        self.next_id += 1;
        self.core.request_value(CONN, id, req);
        id
    }

    fn request(&mut self, rng: &mut dyn RngCore) {
        if self.inflight.is_some() || self.now >= self.stop_at {
            return;
        }
        let mut op = self.next;
        if op == Op::Publish && rng.next_u32().is_multiple_of(20) && !self.retained.is_empty() {
            let i = rng.next_u32() as usize % self.retained.len();
            op = Op::Clear(self.retained.swap_remove(i));
        }
        let channel = self.channel;
        let req = match op {
            Op::Open => Request::Open {
                name: Bytes::from_static(b"sim"),
                flags: OPEN_CREATE | OPEN_PUBLISHER | OPEN_SUBSCRIBER,
            },
            Op::Subscribe(sub) => Request::Subscribe {
                channel,
                subscription: sub,
                filters: filters(sub),
            },
            Op::Publish => {
                let r = rng.next_u32();
                let retention = match r % 8 {
                    0 => 60 * SEC,
                    1 => 2 * SEC,
                    _ => 0,
                };
                let pattern = if (r >> 8).is_multiple_of(2) { "a" } else { "b" };
                Request::Publish {
                    channel,
                    header: EventHeader {
                        id: 0,
                        priority: ((r >> 4) % 4) as u8,
                        retention,
                        publish_time: 0,
                        publisher: Bytes::from(format!("n{}", self.node)),
                        patterns: vec![Bytes::from(format!("{pattern}{}", self.node))],
                    },
                    data: Bytes::from_static(b"event"),
                }
            }
            Op::Clear(event) => Request::RetentionTimeClear { channel, event },
        };
        let id = self.send(&req);
        self.inflight = Some((id, op));
    }

    fn answer(&mut self, id: u64, reply: Reply<Response>) {
        let Some((want, op)) = self.inflight else {
            return;
        };
        if want != id {
            return;
        }
        self.inflight = None;
        match (op, reply) {
            (Op::Open, Reply::Service(Response::Opened { channel })) => {
                self.channel = channel;
                self.next = Op::Subscribe(1);
            }
            (Op::Subscribe(sub), Reply::Ok) => {
                self.log
                    .lock()
                    .unwrap()
                    .observations
                    .push(Observation::Subscribed {
                        node: self.node,
                        inc: self.inc,
                        sub,
                        filters: filters(sub),
                    });
                self.next = if sub == 1 {
                    Op::Subscribe(2)
                } else {
                    Op::Publish
                };
            }
            (Op::Publish, Reply::Service(Response::Published { event })) => {
                self.log.lock().unwrap().published += 1;
                if self.retained.len() < 16 {
                    self.retained.push(event);
                }
            }
            (Op::Clear(_), Reply::Ok | Reply::Error(AisError::NotExist)) => {}
            // Refused at a configuration change or a full queue: again at the next wake.
            (Op::Clear(e), Reply::Error(AisError::TryAgain)) => self.retained.push(e),
            (_, Reply::Error(AisError::TryAgain)) => {}
            (op, other) => self.log.lock().unwrap().unexpected.push(format!(
                "node {} incarnation {}: {op:?} answered {other:?}",
                self.node, self.inc
            )),
        }
    }

    fn delivered(&mut self, cb: Callback) {
        if let Callback::Deliver {
            subscription,
            header,
            ..
        } = cb
        {
            self.unacked += 1;
            let mut log = self.log.lock().unwrap();
            if header.id == ais_proto::evt::EVENT_ID_LOST {
                log.lost += 1;
            } else {
                log.delivered += 1;
            }
            log.observations.push(Observation::Delivered {
                node: self.node,
                inc: self.inc,
                sub: subscription,
                id: header.id,
                publish_time: header.publish_time,
                priority: header.priority,
            });
        }
    }

    fn effects(&mut self) {
        while let Some(e) = self.core.poll_effect() {
            if let Some((CONN, id, reply)) = e.reply::<Response>() {
                self.answer(id, reply);
                continue;
            }
            if let Some((CONN, cb)) = e.callback::<Callback>() {
                self.delivered(cb);
                continue;
            }
            match e {
                Effect::Submit { origin, kind, msg } => self.submits.push(origin, kind, msg),
                Effect::Send { .. } => {}
                other => panic!("EVT makes no {other:?}"),
            }
        }
    }

    /// Acknowledges what was read, unless reading slowly.
    fn ack(&mut self) {
        if self.unacked == 0 || (self.now < self.stop_at && self.now < self.slow_until) {
            return;
        }
        let count = self.unacked;
        self.unacked = 0;
        self.send(&Request::Consumed { count });
    }
}

impl App for EvtApp {
    fn event(&mut self, now: Instant, event: &Event) {
        // The runtime ticks between batches of inputs: a restarted node's clock is set
        // before its first configuration.
        self.now = self.now.max(now);
        self.core.tick(now.as_nanos());
        self.core.totem(event);
        self.effects();
    }

    fn wake(&mut self, now: Instant, rng: &mut dyn RngCore) {
        self.now = now;
        self.core.tick(now.as_nanos());
        self.effects();
        if now < self.stop_at && now >= self.slow_until && rng.next_u32().is_multiple_of(40) {
            self.slow_until = now + Duration::from_millis(300);
        }
        self.ack();
        self.effects();
        self.request(rng);
        self.effects();
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
            && self.core.is_idle()
            && self.submits.is_empty()
            && self.inflight.is_none()
            && self.unacked == 0
    }
}

struct Run {
    violations: Vec<String>,
    evt: Vec<checker::Violation>,
    unexpected: Vec<String>,
    published: usize,
    delivered: usize,
    lost: usize,
}

fn run(seed: u64, defects: EvtDefects) -> Run {
    if std::env::var_os("AIS_SIM_TRACE").is_some() {
        let _ = tracing_subscriber::fmt()
            .with_env_filter("ais_core=debug")
            .with_writer(std::io::stderr)
            .try_init();
    }
    let schedule = common::sim::random_schedule(seed);
    let log: Log = Arc::default();
    let stop_at = schedule.faults_end();
    let factory_log = Arc::clone(&log);
    let sim = Sim::with_apps(
        schedule.clone(),
        Box::new(move |node, inc| {
            Box::new(EvtApp::new(
                node,
                inc,
                Arc::clone(&factory_log),
                defects,
                stop_at,
            ))
        }),
    );
    let outcome = sim.run();
    let violations = common::sim::totem_violations(&outcome, &schedule);
    let mut shared = log.lock().unwrap();
    if outcome.drained {
        // The incarnations alive at the end: each node's last, unless it ended crashed.
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
        for o in &shared.observations {
            if let Observation::Started { node, inc } = o {
                last.insert(*node, *inc);
            }
        }
        let alive = last
            .into_iter()
            .filter(|(n, _)| alive.contains(n))
            .collect();
        shared.observations.push(Observation::Survivors { alive });
    }
    if std::env::var_os("AIS_SIM_TRACE").is_some() {
        for o in &shared.observations {
            eprintln!("{o:?}");
        }
        eprintln!("end");
    }
    Run {
        violations,
        evt: checker::check(&shared.observations),
        unexpected: shared.unexpected.clone(),
        published: shared.published,
        delivered: shared.delivered,
        lost: shared.lost,
    }
}

#[test]
fn every_subscriber_gets_the_same_events_in_order_under_seeded_faults() {
    let (mut published, mut delivered, mut lost) = (0, 0, 0);
    let seeds = common::sim::seeds(1000);
    let runs = seeds.end - seeds.start;
    common::sim::assert_every_seed_passes(seeds, |seed| {
        let r = run(seed, EvtDefects::default());
        published += r.published;
        delivered += r.delivered;
        lost += r.lost;
        r.violations
            .into_iter()
            .chain(r.evt.iter().map(ToString::to_string))
            .chain(r.unexpected)
            .collect()
    });
    // The clients did publish, subscriptions were delivered, and some overflowed.
    assert!(
        published as u64 >= 20 * runs,
        "too few events published: {published} in {runs} runs"
    );
    assert!(delivered >= published, "{delivered} deliveries");
    if runs >= 50 {
        assert!(lost > 0, "no subscription ever overflowed");
    }
}

fn caught(defects: EvtDefects, property: Property) -> usize {
    (0..60)
        .filter(|&seed| {
            run(seed, defects)
                .evt
                .iter()
                .any(|v| v.property == property)
        })
        .count()
}

/// A full queue that drops without telling: a silent gap.
#[test]
fn the_checker_catches_a_silent_drop() {
    let defects = EvtDefects {
        silent_drop: true,
        ..EvtDefects::default()
    };
    assert!(caught(defects, Property::NoSilentLoss) > 0);
}

/// A sync that ignores the other side's retained events: members disagree after a heal.
#[test]
fn the_checker_catches_a_merge_that_forgets_the_other_side() {
    let defects = EvtDefects {
        forget_merged: true,
        ..EvtDefects::default()
    };
    assert!(caught(defects, Property::RetainedAgree) > 0);
}

/// A queue sent newest first: one priority out of order.
#[test]
fn the_checker_catches_a_queue_out_of_order() {
    let defects = EvtDefects {
        lifo: true,
        ..EvtDefects::default()
    };
    assert!(caught(defects, Property::Order) > 0);
}
