//! The membership services under the seeded simulator: every simulated node runs an
//! [`ExecCore`] with CLM and quorum (nodes configured with different `expected_votes`,
//! seeded), a client on each node tracks each, and each service's checker judges what was
//! told: CLM (`ais_core::services::clm::checker`: one view per view number, changes that
//! follow from the previous view) and quorum (`ais_core::services::quorum::checker`: members
//! of one configuration agree, the numbers follow from the members' settings, no two disjoint
//! configurations both quorate). Crashes, restarts, partitions, heals and message loss come
//! from the simulator's random schedules, beside its own EVS checker on the Totem log.
//!
//! A failure prints its seed; `AIS_SIM_SEED=N cargo test -p ais --test sim_services`
//! replays one schedule, `AIS_SIM_SEEDS=N` runs N (the default is sized for CI;
//! docs/simulator.md has the longer sweep).

mod common;

use std::cell::RefCell;
use std::collections::{BTreeMap, VecDeque};
use std::rc::Rc;

use ais_core::exec::{Effect, ExecCore, Origin};
use ais_core::services::clm::{self, Clm, ClmConfig, ClmDefects};
use ais_core::services::quorum::checker::{self, NodeSettings, Observation, Property};
use ais_core::services::quorum::{Quorum, QuorumConfig, QuorumDefects};
use ais_proto::clm::{ClmProtocol, NodeAddress, TRACK_CHANGES};
use ais_proto::ipc::{Nothing, Protocol, Request, ServiceId};
use ais_proto::quorum::{self, QuorumProtocol};
use bytes::Bytes;
use rand::{Rng, RngCore, SeedableRng};
use totem_dpdk::srp::{Event, SubmitError};
use totem_dpdk::{Duration, Instant, MsgId, NodeId, Priority};
use totem_sim::sim::{App, AppSubmit, Sim};

/// What every node's tracking clients were told.
#[derive(Default)]
struct Observed {
    quorum: Vec<Observation>,
    clm: Vec<clm::checker::Observation>,
}

/// Deliberate defects of a run.
#[derive(Debug, Clone, Copy, Default)]
struct Defects {
    quorum: QuorumDefects,
    clm: ClmDefects,
}

/// Connections of the tracking clients.
const QUORUM_CONN: u64 = 1;
const CLM_CONN: u64 = 2;

struct ServicesApp {
    core: ExecCore,
    observed: Rc<RefCell<Observed>>,
    node: u32,
    incarnation: u32,
    submits: VecDeque<AppSubmit>,
    origins: BTreeMap<u64, Origin>,
    next_tag: u64,
    stop_at: Instant,
    now: Instant,
}

impl ServicesApp {
    fn new(
        node: NodeId,
        incarnation: u32,
        cfg: QuorumConfig,
        defects: Defects,
        observed: Rc<RefCell<Observed>>,
        stop_at: Instant,
    ) -> ServicesApp {
        let me = ClmConfig {
            name: Bytes::from(format!("blade-{}", node.0)),
            address: NodeAddress::V4([10, 0, 0, node.0 as u8]),
            // A restart is another boot.
            boot_timestamp: 1_000_000 * u64::from(incarnation) + u64::from(node.0),
        };
        let mut app = ServicesApp {
            core: ExecCore::new(
                node,
                vec![
                    Box::new(Clm::with_defects(me, defects.clm)),
                    Box::new(Quorum::with_defects(cfg, defects.quorum)),
                ],
            ),
            observed,
            node: node.0,
            incarnation,
            submits: VecDeque::new(),
            origins: BTreeMap::new(),
            next_tag: 1,
            stop_at,
            now: Instant(0),
        };
        // One client tracking each service.
        app.hello(QUORUM_CONN, QuorumProtocol::ID);
        app.core
            .request_value(QUORUM_CONN, 2, &quorum::Request::Track(true));
        app.hello(CLM_CONN, ClmProtocol::ID);
        app.core.request_value(
            CLM_CONN,
            2,
            &ais_proto::clm::Request::Track {
                flags: TRACK_CHANGES,
            },
        );
        app.effects();
        app
    }

    fn hello(&mut self, conn: u64, service: ServiceId) {
        self.core.connected(conn, 100 + conn as u32);
        self.core.request_value(
            conn,
            1,
            &Request::<Nothing>::Hello {
                version: ais_proto::ipc::VERSION,
                service,
            },
        );
    }

    fn effects(&mut self) {
        while let Some(e) = self.core.poll_effect() {
            if matches!(
                e,
                Effect::Send {
                    conn: QUORUM_CONN,
                    ..
                }
            ) && let Some((_, quorum::Callback::Changed(state))) = e.callback()
            {
                self.observed.borrow_mut().quorum.push(Observation {
                    node: self.node,
                    state,
                });
                continue;
            }
            if matches!(e, Effect::Send { conn: CLM_CONN, .. })
                && let Some((_, ais_proto::clm::Callback::Track(view))) = e.callback()
            {
                let ring = self.core.ring();
                self.observed
                    .borrow_mut()
                    .clm
                    .push(clm::checker::Observation {
                        node: self.node,
                        incarnation: self.incarnation,
                        ring: (ring.rep.0, ring.seq),
                        view,
                    });
                continue;
            }
            match e {
                Effect::Submit { origin, kind, msg } => {
                    let tag = self.next_tag;
                    self.next_tag += 1;
                    self.origins.insert(tag, origin);
                    self.submits.push_back(AppSubmit {
                        tag,
                        prio: Priority::default(),
                        kind,
                        payload: msg,
                    });
                }
                Effect::Send { .. } => {}
                other => panic!("CLM and quorum make no {other:?}"),
            }
        }
    }
}

impl App for ServicesApp {
    fn event(&mut self, _now: Instant, event: &Event) {
        self.core.totem(event);
        self.effects();
    }

    fn wake(&mut self, now: Instant, _rng: &mut dyn RngCore) {
        self.now = now;
        self.core.tick(now.as_nanos());
        self.effects();
    }

    fn poll_submit(&mut self) -> Option<AppSubmit> {
        self.submits.pop_front()
    }

    fn submitted(&mut self, _now: Instant, tag: u64, result: Result<MsgId, SubmitError>) {
        let origin = self.origins.remove(&tag).expect("a known tag");
        self.core.submitted(origin, result);
        self.effects();
    }

    fn next_wake(&self) -> Option<Instant> {
        // Ticks offer refused internal messages again; none are needed once idle.
        (!self.is_idle()).then_some(self.now + Duration::from_millis(10))
    }

    fn is_idle(&self) -> bool {
        self.now >= self.stop_at && self.core.is_idle() && self.submits.is_empty()
    }
}

/// Each node's settings: one vote, `expected_votes` the node count or one more (seeded).
fn settings(seed: u64, nodes: u32) -> BTreeMap<u32, NodeSettings> {
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed ^ 0x9e37_79b9);
    (1..=nodes)
        .map(|n| {
            (
                n,
                NodeSettings {
                    votes: 1,
                    expected_votes: nodes + u32::from(rng.random_bool(0.3)),
                    two_node: false,
                },
            )
        })
        .collect()
}

struct Run {
    violations: Vec<String>,
    quorum: Vec<checker::Violation>,
    clm: Vec<clm::checker::Violation>,
    observations: usize,
}

fn run(seed: u64, defects: Defects) -> Run {
    let schedule = common::sim::random_schedule(seed);
    let settings = settings(seed, schedule.nodes);
    let observed = Rc::new(RefCell::new(Observed::default()));
    let stop_at = schedule.faults_end();
    let factory_observed = Rc::clone(&observed);
    let factory_settings = settings.clone();
    let sim = Sim::with_apps(
        schedule.clone(),
        Box::new(move |node, incarnation| {
            let s = factory_settings[&node.0];
            let cfg = QuorumConfig {
                votes: s.votes,
                expected_votes: s.expected_votes,
                two_node: s.two_node,
                wait_for_all: false,
            };
            Box::new(ServicesApp::new(
                node,
                incarnation,
                cfg,
                defects,
                Rc::clone(&factory_observed),
                stop_at,
            ))
        }),
    );
    let outcome = sim.run();
    let violations = common::sim::totem_violations(&outcome, &schedule);
    let observed = observed.borrow();
    Run {
        violations,
        quorum: checker::check(&observed.quorum, &settings),
        clm: clm::checker::check(&observed.clm),
        observations: observed.quorum.len().min(observed.clm.len()),
    }
}

#[test]
fn clm_views_and_quorum_agree_at_every_member_under_seeded_faults() {
    let mut observations = 0;
    let seeds = common::sim::seeds(3000);
    let runs = seeds.end - seeds.start;
    common::sim::assert_every_seed_passes(seeds, |seed| {
        let r = run(seed, Defects::default());
        observations += r.observations;
        r.violations
            .into_iter()
            .chain(r.quorum.iter().map(ToString::to_string))
            .chain(r.clm.iter().map(ToString::to_string))
            .collect()
    });
    // Every run tells every node's clients of at least one configuration.
    assert!(
        observations as u64 >= 2 * runs,
        "too few states told: {observations} in {runs} runs"
    );
}

/// A quorum service that uses only its own `expected_votes`: members configured differently
/// disagree, and the checker says so.
#[test]
fn the_checker_catches_a_quorum_that_ignores_the_members_settings() {
    let defects = Defects {
        quorum: QuorumDefects {
            local_expected_votes: true,
        },
        ..Defects::default()
    };
    let caught = (0..100)
        .filter(|&seed| {
            run(seed, defects)
                .quorum
                .iter()
                .any(|v| v.property == Property::Agreement)
        })
        .count();
    assert!(caught > 0, "no schedule showed the defect");
}

/// A CLM that shows each node's first view as the one in which this node first saw it, not
/// what the node says: after a merge the two sides disagree, and the checker says so.
#[test]
fn the_checker_catches_a_clm_that_makes_up_initial_views() {
    let defects = Defects {
        clm: ClmDefects {
            local_initial_view: true,
        },
        ..Defects::default()
    };
    let caught = (0..100)
        .filter(|&seed| {
            run(seed, defects)
                .clm
                .iter()
                .any(|v| v.property == clm::checker::Property::Agreement)
        })
        .count();
    assert!(caught > 0, "no schedule showed the defect");
}
