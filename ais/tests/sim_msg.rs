//! MSG under the seeded simulator: every simulated node runs an [`ExecCore`] with the message
//! queue service, and a client on each node opens a queue of its own (persistent on even
//! nodes, non-persistent with a short retention time on odd ones), sends numbered messages
//! of every priority to every node's queue in turn and gets from its own (one call in flight,
//! a new one every 10 ms), closing and reopening its queue now and then; every queue is in one
//! queue group (`g`, its policy drawn from the seed) and every third send goes to the group. Crashes, restarts,
//! partitions, heals and message loss come from the simulator's random schedules. The MSG
//! checker (`ais_core::services::msg::checker`) judges the queues every node held at each
//! sync, the sends clients were told were done and the messages gets handed out: queues
//! identical at every member of a configuration, no message held twice, none handed out
//! twice, no acknowledged send lost while its queue lives and a node holding it lives.
//!
//! Send-receive and reply: every fourth send is a send-receive to another node's queue
//! (of the highest priority, waiting 40 ms for a reply); a client that gets a message awaiting a reply answers it
//! (sync or async in turn) at once, 10 or 20 ms later, 80 ms later (after its caller's
//! timeout), or never. The checker also judges the replies every node awaits after each
//! update (the same at every member, only for members' callers) and what callers got: each
//! reply handed at most once and only to the caller it answers, one answer per send-receive
//! (and one for each whose node lived to the end).
//!
//! A failure prints its seed; `AIS_SIM_SEED=N cargo test -p ais --test sim_msg` replays one
//! schedule (`AIS_SIM_TRACE=1` prints every applied change but sends and takes,
//! `AIS_SIM_TRACE_KEY=<message key>` that message's story,
//! `AIS_SIM_TRACE_AWAIT=1` the replies each node awaits after each update), `AIS_SIM_SEEDS=N` runs N (the default is sized for CI; docs/simulator.md has
//! the longer sweep).

mod common;

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use ais_core::exec::{Effect, ExecCore};
use ais_core::services::msg::checker::{self, Answer, Observation, Property};
use ais_core::services::msg::queues::{Applied, MergeDefects, Queues};
use ais_core::services::msg::{Msg, MsgConfig, MsgDefects, Observer};
use ais_proto::ipc::{AisError, Nothing, Protocol, Reply};
use ais_proto::msg::{
    Attributes, MessageBody, MsgKey, MsgProtocol, OPEN_CREATE, QUEUE_PERSISTENT, QueueId, Request,
    Response, Update,
};
use bytes::Bytes;
use rand::RngCore;
use totem_dpdk::srp::{Event, SubmitError};
use totem_dpdk::{Duration, Instant, MsgId, NodeId, RingId};
use totem_sim::log::LogEvent;
use totem_sim::sim::{App, AppSubmit, Sim};

const CONN: u64 = 1;
const MS: u64 = 1_000_000;

#[derive(Default)]
struct Shared {
    observations: Vec<Observation>,
    /// Answers a client did not expect.
    unexpected: Vec<String>,
    acked: usize,
    got: usize,
    /// Sends to the group applied (at every node).
    group_sends: usize,
    /// Each sent message's data, at its sender's node: its key and queue.
    sends: BTreeMap<Bytes, (MsgKey, QueueId)>,
    /// Send-receives answered with a reply, and with `TIMEOUT`.
    replied: usize,
    timeouts: usize,
}

type Log = Arc<Mutex<Shared>>;

/// Tells the log what one node's MSG did; with the ring it last delivered an update in and a
/// digest of the updates it delivered there.
struct Watch(Log, (u32, u64), u64);

impl Observer for Watch {
    fn activated(&mut self, node: u32, ring: RingId, members: &[NodeId], queues: &Queues) {
        self.0
            .lock()
            .unwrap()
            .observations
            .push(Observation::Activated {
                node,
                ring: (ring.rep.0, ring.seq),
                members: members.iter().map(|m| m.0).collect(),
                state: checker::state(queues),
            });
    }

    fn applied(&mut self, node: u32, key: MsgKey, update: &Update, applied: &Applied) {
        if std::env::var_os("AIS_SIM_TRACE").is_some()
            && !matches!(update, Update::Send { .. } | Update::Take { .. })
        {
            eprintln!("APPLY node {node} {key}: {update:?} -> {applied:?}");
        }
        match (update, applied) {
            (Update::SendReceive { message, .. }, Applied::Sent { .. }) if key.node == node => {
                self.0
                    .lock()
                    .unwrap()
                    .observations
                    .push(Observation::CallSent {
                        key,
                        call: message.data.clone(),
                    });
            }
            (Update::Reply { to, message }, Applied::Done) => {
                self.0
                    .lock()
                    .unwrap()
                    .observations
                    .push(Observation::Replied {
                        to: *to,
                        reply: message.data.clone(),
                    });
            }
            _ => {}
        }
        if let (Update::Send { message, .. }, Applied::Sent { queue, via, .. }) = (update, applied)
        {
            if std::env::var("AIS_SIM_TRACE_KEY").is_ok_and(|k| k == key.to_string()) {
                eprintln!("node {node} applied {key}: {applied:?}");
            }
            let mut log = self.0.lock().unwrap();
            if key.node == node {
                log.sends.insert(message.data.clone(), (key, *queue));
            }
            if let Some(choice) = via {
                log.observations.push(Observation::GroupSend {
                    node,
                    choice: choice.clone(),
                });
                log.group_sends += 1;
            }
        }
    }

    fn awaiting(
        &mut self,
        node: u32,
        ring: RingId,
        after: MsgKey,
        awaited: &BTreeMap<MsgKey, u64>,
    ) {
        let ring = (ring.rep.0, ring.seq);
        if self.1 != ring {
            self.1 = ring;
            self.2 = 0xcbf2_9ce4_8422_2325;
        }
        for x in [u64::from(after.node), after.tag] {
            self.2 = (self.2 ^ x).wrapping_mul(0x0100_0000_01b3);
        }
        if std::env::var_os("AIS_SIM_TRACE_AWAIT").is_some() {
            eprintln!("AWAIT node {node} ring {ring:?} after {after}: {awaited:?}");
        }
        self.0
            .lock()
            .unwrap()
            .observations
            .push(Observation::Awaiting {
                node,
                ring,
                after,
                delivered: self.2,
                awaited: awaited.iter().map(|(k, s)| (*k, *s)).collect(),
            });
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Op {
    Open,
    GroupCreate,
    GroupInsert,
    Send(u64),
    SendReceive(u64),
    Get,
    Close,
    /// A reply to `to`, its number, async.
    Reply(MsgKey, u64, bool),
}

/// How long a send-receive waits for its reply.
const CALL_TIMEOUT: u64 = 40 * MS;
/// The most reply data bytes a send-receive takes.
const REPLY_SIZE: u64 = 32;

struct MsgApp {
    core: ExecCore,
    log: Log,
    node: u32,
    incarnation: u32,
    submits: common::sim::Submits,
    stop_at: Instant,
    now: Instant,
    config: Vec<u32>,
    handle: u64,
    next: Op,
    inflight: Option<(u64, Op)>,
    next_id: u64,
    ops: u64,
    sent: u64,
    policy: u8,
    group_created: bool,
    /// Send-receives asked, by request id: their message's data (kept after the answer, so
    /// a second answer is seen).
    calls: BTreeMap<u64, Bytes>,
    /// Replies to make: when, and the reply.
    replies: Vec<(Instant, Op)>,
    /// Messages got that await a reply.
    to_reply: u64,
}

fn attrs(node: u32) -> Attributes {
    Attributes {
        creation_flags: if node.is_multiple_of(2) {
            QUEUE_PERSISTENT
        } else {
            0
        },
        size: [600, 600, 600, 600],
        retention_time: 300 * MS,
    }
}

impl MsgApp {
    fn new(
        node: NodeId,
        incarnation: u32,
        log: Log,
        defects: MsgDefects,
        stop_at: Instant,
        policy: u8,
    ) -> MsgApp {
        log.lock().unwrap().observations.push(Observation::Started {
            node: node.0,
            incarnation,
        });
        let service = Msg::with_defects(MsgConfig::default(), defects)
            .with_observer(Box::new(Watch(Arc::clone(&log), (0, 0), 0)));
        let mut app = MsgApp {
            core: ExecCore::new(node, vec![Box::new(service)]),
            log,
            node: node.0,
            incarnation,
            submits: common::sim::Submits::default(),
            stop_at,
            now: Instant(0),
            config: Vec::new(),
            handle: 0,
            next: Op::Open,
            inflight: None,
            next_id: 2,
            ops: 0,
            sent: 0,
            policy,
            group_created: false,
            calls: BTreeMap::new(),
            replies: Vec::new(),
            to_reply: 0,
        };
        app.core.connected(CONN, 100);
        app.core.request_value(
            CONN,
            1,
            &ais_proto::ipc::Request::<Nothing>::Hello {
                version: ais_proto::ipc::VERSION,
                service: MsgProtocol::ID,
            },
        );
        app.effects();
        app
    }

    fn data(&self, k: u64) -> Bytes {
        Bytes::from(format!("n{}.{}#{k}", self.node, self.incarnation))
    }

    fn request(&mut self) {
        if self.inflight.is_some() || self.now >= self.stop_at {
            return;
        }
        let due = self.replies.iter().position(|(at, _)| *at <= self.now);
        let op = match due {
            Some(i) => self.replies.remove(i).1,
            None => self.next,
        };
        let id = self.next_id;
        let req = match op {
            Op::Open => Request::Open {
                name: Bytes::from(format!("n{}", self.node)),
                flags: OPEN_CREATE,
                attributes: Some(attrs(self.node)),
            },
            Op::GroupCreate => Request::GroupCreate {
                name: Bytes::from_static(b"g"),
                policy: self.policy,
            },
            Op::GroupInsert => Request::GroupInsert {
                group: Bytes::from_static(b"g"),
                queue: Bytes::from(format!("n{}", self.node)),
            },
            Op::Send(k) => Request::Send {
                destination: if k % 3 == 0 {
                    Bytes::from_static(b"g")
                } else {
                    Bytes::from(format!("n{}", 1 + k % 5))
                },
                message: MessageBody {
                    msg_type: 1,
                    version: 1,
                    priority: (k % 4) as u8,
                    sender_name: Bytes::new(),
                    data: self.data(k),
                },
            },
            Op::Get => Request::Get {
                handle: self.handle,
                timeout: if self.ops.is_multiple_of(3) {
                    0
                } else {
                    20 * MS
                },
            },
            Op::Close => Request::Close {
                handle: self.handle,
            },
            Op::SendReceive(k) => {
                // Unique per attempt: a retry (TRY_AGAIN) is another call.
                let data = Bytes::from(format!("n{}.{}#r{k}.{id}", self.node, self.incarnation));
                self.calls.insert(id, data.clone());
                self.log
                    .lock()
                    .unwrap()
                    .observations
                    .push(Observation::Called {
                        node: self.node,
                        call: data.clone(),
                    });
                Request::SendReceive {
                    destination: Bytes::from(format!("n{}", 1 + (self.node as u64 + k % 4) % 5)),
                    message: MessageBody {
                        msg_type: 2,
                        version: 1,
                        // The highest: taken before the queue's other messages.
                        priority: 0,
                        sender_name: Bytes::new(),
                        data,
                    },
                    reply_size: REPLY_SIZE,
                    timeout: CALL_TIMEOUT,
                }
            }
            Op::Reply(to, n, async_reply) => {
                let message = MessageBody {
                    msg_type: 3,
                    version: 1,
                    priority: 0,
                    sender_name: Bytes::new(),
                    data: Bytes::from(format!("re{}.{}#{n}", self.node, self.incarnation)),
                };
                if async_reply {
                    Request::ReplyAsync {
                        to,
                        message,
                        invocation: n,
                        ack: n.is_multiple_of(2),
                    }
                } else {
                    Request::Reply { to, message }
                }
            }
        };
        self.next_id += 1;
        self.inflight = Some((id, op));
        self.core.request_value(CONN, id, &req);
    }

    fn after(&mut self, op: Op) {
        self.ops += 1;
        self.next = match op {
            Op::Open if !self.group_created => Op::GroupCreate,
            Op::Open | Op::GroupCreate => Op::GroupInsert,
            Op::Get if self.ops.is_multiple_of(41) => Op::Close,
            Op::Close => Op::Open,
            Op::GroupInsert | Op::Get => {
                self.sent += 1;
                if self.sent % 4 == 2 {
                    Op::SendReceive(self.sent)
                } else {
                    Op::Send(self.sent)
                }
            }
            Op::Send(_) | Op::SendReceive(_) => Op::Get,
            // A reply is made between the other calls.
            Op::Reply(..) => self.next,
        };
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
            (Op::Open, Reply::Service(Response::Opened { handle })) => {
                self.handle = handle;
                self.after(op);
            }
            // Open elsewhere still (an older incarnation's open not yet closed by a sync).
            (Op::Open, Reply::Error(AisError::Busy)) => {}
            (Op::GroupCreate, Reply::Ok | Reply::Error(AisError::Exist)) => {
                self.group_created = true;
                self.after(op);
            }
            // In it already; or the queue went meanwhile (its retention passed).
            (Op::GroupInsert, Reply::Ok | Reply::Error(AisError::Exist | AisError::NotExist)) => {
                self.after(op)
            }
            (Op::Send(k), Reply::Ok) => {
                let data = self.data(k);
                let mut log = self.log.lock().unwrap();
                match log.sends.get(&data).copied() {
                    Some((key, queue)) => {
                        log.acked += 1;
                        log.observations.push(Observation::Acked {
                            node: self.node,
                            key,
                            queue,
                            holders: self.config.clone(),
                            ring_seq: key.seq,
                        });
                    }
                    None => log.unexpected.push(format!(
                        "node {}: send {k} acknowledged but never applied here",
                        self.node
                    )),
                }
                drop(log);
                self.after(op);
            }
            (
                Op::Send(_),
                Reply::Error(
                    AisError::NotExist
                    | AisError::QueueFull
                    | AisError::NoResources
                    | AisError::QueueNotAvailable,
                ),
            ) => self.after(op),
            (Op::Get, Reply::Service(Response::Message { key, message, .. })) => {
                if message.msg_type == 2 {
                    // Awaits a reply: at once, 10 or 20 ms later, after its caller's timeout,
                    // or never.
                    self.to_reply += 1;
                    let n = self.to_reply;
                    let delay = match n % 5 {
                        0 => None,
                        1 => Some(0),
                        2 => Some(10 * MS),
                        3 => Some(20 * MS),
                        _ => Some(2 * CALL_TIMEOUT),
                    };
                    if let Some(d) = delay {
                        let op = Op::Reply(key, n, n % 3 == 1);
                        self.replies
                            .push((self.now + Duration::from_micros(d / 1000), op));
                    }
                }
                let mut log = self.log.lock().unwrap();
                log.got += 1;
                log.observations.push(Observation::Got {
                    node: self.node,
                    key,
                    holders: self.config.clone(),
                    ring_seq: self.core.ring().seq,
                });
                drop(log);
                self.after(op);
            }
            (Op::Get, Reply::Error(AisError::Timeout)) => self.after(op),
            (
                Op::SendReceive(_),
                Reply::Service(Response::Reply { .. })
                | Reply::Error(
                    AisError::Timeout
                    | AisError::NotExist
                    | AisError::QueueFull
                    | AisError::NoResources
                    | AisError::QueueNotAvailable,
                ),
            ) => self.after(op),
            // Made, or refused: no reply awaited (any more), or a configuration change. A
            // reply is not made again.
            (Op::Reply(..), Reply::Ok | Reply::Error(AisError::NotExist | AisError::TryAgain)) => {
                self.after(op)
            }
            // The open did not survive a merge, or the queue's retention passed: open again.
            (Op::Get | Op::Close, Reply::Error(AisError::BadHandle)) => self.next = Op::Open,
            (Op::Close, Reply::Ok) => self.after(op),
            (_, Reply::Error(AisError::TryAgain)) => {}
            (op, other) => self.log.lock().unwrap().unexpected.push(format!(
                "node {} incarnation {}: {op:?} answered {other:?}",
                self.node, self.incarnation
            )),
        }
    }

    fn effects(&mut self) {
        while let Some(e) = self.core.poll_effect() {
            if let Some((CONN, id, reply)) = e.reply::<Response>() {
                if let Some(call) = self.calls.get(&id) {
                    let answer = match &reply {
                        Reply::Service(Response::Reply { message, .. }) => {
                            Answer::Reply(message.data.clone())
                        }
                        Reply::Error(AisError::Timeout) => Answer::Timeout,
                        Reply::Error(e) => Answer::Error(*e),
                        other => Answer::Error({
                            self.log.lock().unwrap().unexpected.push(format!(
                                "node {}: send-receive answered {other:?}",
                                self.node
                            ));
                            AisError::Library
                        }),
                    };
                    let mut log = self.log.lock().unwrap();
                    match answer {
                        Answer::Reply(_) => log.replied += 1,
                        Answer::Timeout => log.timeouts += 1,
                        Answer::Error(_) => {}
                    }
                    log.observations.push(Observation::Answered {
                        node: self.node,
                        call: call.clone(),
                        answer,
                    });
                }
                self.answer(id, reply);
                continue;
            }
            match e {
                Effect::Submit { origin, kind, msg } => self.submits.push(origin, kind, msg),
                Effect::Send { .. } => {}
                other => panic!("MSG makes no {other:?}"),
            }
        }
    }
}

impl App for MsgApp {
    fn event(&mut self, _now: Instant, event: &Event) {
        if let Event::ConfigChange(c) = event {
            self.config = c.members.iter().map(|m| m.0).collect();
        }
        self.core.totem(event);
        self.effects();
    }

    fn wake(&mut self, now: Instant, _rng: &mut dyn RngCore) {
        self.now = now;
        self.core.tick(now.as_nanos());
        self.effects();
        self.request();
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
    }
}

struct Run {
    violations: Vec<String>,
    msg: Vec<checker::Violation>,
    unexpected: Vec<String>,
    acked: usize,
    got: usize,
    group_sends: usize,
    replied: usize,
    timeouts: usize,
}

fn run(seed: u64, defects: MsgDefects) -> Run {
    let schedule = common::sim::random_schedule(seed);
    let log: Log = Arc::default();
    let stop_at = schedule.faults_end();
    let factory_log = Arc::clone(&log);
    let policy = 1 + (seed % 3) as u8;
    let sim = Sim::with_apps(
        schedule.clone(),
        Box::new(move |node, incarnation| {
            Box::new(MsgApp::new(
                node,
                incarnation,
                Arc::clone(&factory_log),
                defects,
                stop_at,
                policy,
            ))
        }),
    );
    let outcome = sim.run();
    let violations = common::sim::totem_violations(&outcome, &schedule);
    let mut shared = log.lock().unwrap();
    if outcome.drained {
        // The nodes alive at the end: not crashed since their last (re)start.
        let mut crashed = std::collections::BTreeSet::new();
        for e in &outcome.log {
            match e {
                LogEvent::Crash { node, .. } => crashed.insert(node.0),
                LogEvent::Restart { node, .. } => crashed.remove(&node.0),
                _ => false,
            };
        }
        let live = (1..=schedule.nodes)
            .filter(|n| !crashed.contains(n))
            .collect();
        shared.observations.push(Observation::End { live });
    }
    if let Ok(k) = std::env::var("AIS_SIM_TRACE_KEY") {
        for o in &shared.observations {
            let text = format!("{o:?}");
            match o {
                Observation::Activated {
                    node,
                    ring,
                    members,
                    state,
                } => {
                    let holds: Vec<String> = state
                        .queues
                        .iter()
                        .filter(|(_, q)| {
                            q.messages.iter().any(|(_, m)| m.to_string() == k)
                                || q.taken.iter().any(|m| m.to_string() == k)
                        })
                        .map(|(id, q)| {
                            format!(
                                "{id}: held {} taken {}",
                                q.messages
                                    .iter()
                                    .filter(|(_, m)| m.to_string() == k)
                                    .count(),
                                q.taken.iter().any(|m| m.to_string() == k)
                            )
                        })
                        .collect();
                    eprintln!("activated node {node} ring {ring:?} members {members:?}: {holds:?}");
                }
                Observation::Started { .. } => eprintln!("{text}"),
                _ if text.contains(&format!("tag: {}", k.rsplit('#').next().unwrap_or(""))) => {
                    eprintln!("{text}")
                }
                _ => {}
            }
        }
    }
    Run {
        violations,
        msg: checker::check(&shared.observations),
        unexpected: shared.unexpected.clone(),
        acked: shared.acked,
        got: shared.got,
        group_sends: shared.group_sends,
        replied: shared.replied,
        timeouts: shared.timeouts,
    }
}

#[test]
fn queues_agree_and_keep_every_message_once_under_seeded_faults() {
    let (mut acked, mut got, mut group_sends, mut replied, mut timeouts) = (0, 0, 0, 0, 0);
    let seeds = common::sim::seeds(2500);
    let runs = seeds.end - seeds.start;
    common::sim::assert_every_seed_passes(seeds, |seed| {
        let r = run(seed, MsgDefects::default());
        acked += r.acked;
        got += r.got;
        group_sends += r.group_sends;
        replied += r.replied;
        timeouts += r.timeouts;
        r.violations
            .into_iter()
            .chain(r.msg.iter().map(ToString::to_string))
            .chain(r.unexpected)
            .collect()
    });
    eprintln!(
        "{runs} runs: {acked} sends acknowledged, {got} messages got, {group_sends} group sends \
         applied, {replied} send-receives answered with a reply, {timeouts} with TIMEOUT"
    );
    // Send-receives got replies and ran out of time: several per run on average.
    assert!(
        replied as u64 >= runs && timeouts as u64 >= 2 * runs,
        "too few send-receives answered: {replied} replies, {timeouts} timeouts in {runs} runs"
    );
    // The clients did send and get: dozens per run on average.
    assert!(
        acked as u64 >= 20 * runs && got as u64 >= 10 * runs && group_sends as u64 >= 5 * runs,
        "too little traffic: {acked} sends acknowledged, {got} gets in {runs} runs"
    );
}

fn caught(defects: MsgDefects, properties: &[Property]) -> usize {
    let n = (0..100)
        .filter(|&seed| {
            run(seed, defects)
                .msg
                .iter()
                .any(|v| properties.contains(&v.property))
        })
        .count();
    eprintln!("{properties:?} caught in {n} of 100 schedules");
    n
}

/// A merge that keeps only the lowest holder's copy: the other side's sends are lost.
#[test]
fn the_checker_catches_a_merge_that_drops_the_other_sides_messages() {
    let defects = MsgDefects {
        merge: MergeDefects {
            first_copy_only: true,
            ..MergeDefects::default()
        },
        ..MsgDefects::default()
    };
    assert!(
        caught(defects, &[Property::Durable]) > 0,
        "no schedule showed the defect"
    );
}

/// A merge that forgets what the other side took: a taken message comes back and is handed
/// out again.
#[test]
fn the_checker_catches_a_merge_that_forgets_taken_messages() {
    let defects = MsgDefects {
        merge: MergeDefects {
            forget_taken: true,
            ..MergeDefects::default()
        },
        ..MsgDefects::default()
    };
    assert!(
        caught(defects, &[Property::Once, Property::Unique]) > 0,
        "no schedule showed the defect"
    );
}

/// Gets answered from the local copy without a take on the ring: messages handed out twice.
#[test]
fn the_checker_catches_gets_that_do_not_take_on_the_ring() {
    let defects = MsgDefects {
        local_get: true,
        ..MsgDefects::default()
    };
    assert!(
        caught(defects, &[Property::Once]) > 0,
        "no schedule showed the defect"
    );
}

/// Sends to a group go to its first candidate whatever the policy: caught as **Policy**.
#[test]
fn the_checker_catches_a_group_that_ignores_its_policy() {
    let defects = MsgDefects {
        group_first: true,
        ..MsgDefects::default()
    };
    assert!(
        caught(defects, &[Property::Policy]) > 0,
        "no schedule showed the defect"
    );
}

/// The caller's node answers TIMEOUT at the deadline and still hands a reply delivered before
/// its end: caught as **OneAnswer** (a reply after the timeout).
#[test]
fn the_checker_catches_a_reply_handed_after_the_callers_timeout() {
    let defects = MsgDefects {
        reply_after_timeout: true,
        ..MsgDefects::default()
    };
    assert!(
        caught(defects, &[Property::OneAnswer]) > 0,
        "no schedule showed the defect"
    );
}

/// A sync that keeps the replies awaited before it: callers of nodes that left stay awaited,
/// caught as **AwaitedMember**.
#[test]
fn the_checker_catches_awaited_replies_kept_across_a_sync() {
    let defects = MsgDefects {
        keep_awaited: true,
        ..MsgDefects::default()
    };
    assert!(
        caught(
            defects,
            &[Property::AwaitedMember, Property::AwaitedIdentical]
        ) > 0,
        "no schedule showed the defect"
    );
}
