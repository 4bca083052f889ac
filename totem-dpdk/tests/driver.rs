//! The Totem driver on real threads and real time, over the in-memory network and over kernel
//! UDP on the loopback interface.
//!
//! Assumptions shared by every test: loopback only (127.0.0.1, no multicast), no root (no
//! CPU pinning, no privileged ports), a loaded 2-core machine (timeouts are generous and each
//! test states the one timing bound it checks).

use crossbeam_channel::RecvTimeoutError;
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use bytes::Bytes;
use dataplane::Member;
use dataplane::mem::{MemConfig, MemNetwork};
use dataplane::udp::{UdpConfig, UdpTransport};
use totem_dpdk::driver::{self, Driver, DriverConfig, DriverSubmitError};
use totem_dpdk::srp::{self, ConfigChange, ConfigKind, Event, SubmitError};
use totem_dpdk::{DeliveryKind, MsgId, NodeId, Priority};

const IDS: [u32; 3] = [1, 2, 3];
const PER_NODE: u32 = 200;

fn member(id: u32, addr: SocketAddr) -> Member {
    Member {
        id: dataplane::NodeId(id),
        addr,
    }
}

fn config(id: u32, members: &[Member]) -> DriverConfig {
    DriverConfig::new(srp::Config::new(NodeId(id), Vec::new()), members.to_vec())
}

fn spawn_mem(net: &MemNetwork, ids: &[u32], tweak: impl Fn(&mut srp::Config)) -> Vec<Driver> {
    let members: Vec<Member> = ids
        .iter()
        .map(|&id| member(id, MemNetwork::node_addr(dataplane::NodeId(id))))
        .collect();
    ids.iter()
        .map(|&id| {
            let t = net
                .attach_node(dataplane::NodeId(id), MemConfig::default())
                .expect("attach");
            let mut cfg = config(id, &members);
            tweak(&mut cfg.totem);
            driver::spawn(t, cfg).expect("spawn driver")
        })
        .collect()
}

fn spawn_udp(ids: &[u32]) -> Vec<Driver> {
    let transports: Vec<UdpTransport> = ids
        .iter()
        .map(|_| {
            UdpTransport::new(UdpConfig::unicast("127.0.0.1:0".parse().unwrap())).expect("bind")
        })
        .collect();
    let members: Vec<Member> = ids
        .iter()
        .zip(&transports)
        .map(|(&id, t)| member(id, t.local_addr()))
        .collect();
    ids.iter()
        .zip(transports)
        .map(|(&id, t)| driver::spawn(t, config(id, &members)).expect("spawn driver"))
        .collect()
}

/// Reads `driver`'s events until a regular configuration satisfying `want` arrives, within
/// `within`; returns it. Deliveries read on the way are returned too.
fn wait_config(
    driver: &Driver,
    within: Duration,
    want: impl Fn(&ConfigChange) -> bool,
) -> (ConfigChange, Vec<srp::Delivery>) {
    let deadline = Instant::now() + within;
    let mut delivered = Vec::new();
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match driver.events().recv_timeout(left) {
            Ok(Event::ConfigChange(c)) if c.kind == ConfigKind::Regular && want(&c) => {
                return (c, delivered);
            }
            Ok(Event::Deliver(d)) => delivered.push(d),
            Ok(_) => {}
            Err(e) => panic!("no matching configuration within {within:?}: {e}"),
        }
    }
}

fn wait_ring(drivers: &[Driver], n: usize) {
    for d in drivers {
        wait_config(d, Duration::from_secs(5), |c| c.members.len() == n);
    }
}

/// Message `i` of node `id`: sizes from 10 bytes to several frames, content from (id, i).
fn payload(id: u32, i: u32) -> Bytes {
    let len = [10, 100, 1000, 3000, 5000][(i % 5) as usize];
    let mut v = Vec::with_capacity(len);
    v.extend_from_slice(&id.to_be_bytes());
    v.extend_from_slice(&i.to_be_bytes());
    v.resize(len, (id * 31 + i) as u8);
    Bytes::from(v)
}

fn submit_retrying(d: &driver::Submitter, p: Bytes) -> MsgId {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        match d.submit(Priority::NORMAL, DeliveryKind::Agreed, p.clone()) {
            Ok(id) => return id,
            Err(DriverSubmitError::Core(SubmitError::Backpressure)) => {
                assert!(Instant::now() < deadline, "backpressure for 10 s");
                std::thread::sleep(Duration::from_millis(1));
            }
            Err(e) => panic!("submit failed: {e}"),
        }
    }
}

/// Each node submits `PER_NODE` messages (concurrently); every node delivers all of them, in
/// the same order, with the submitted contents.
fn all_deliver_in_one_order(drivers: &[Driver]) {
    let submitters: Vec<_> = drivers.iter().map(Driver::submitter).collect();
    let mut expected: BTreeMap<MsgId, Bytes> = BTreeMap::new();
    std::thread::scope(|s| {
        let handles: Vec<_> = IDS
            .iter()
            .zip(&submitters)
            .map(|(&id, sub)| {
                s.spawn(move || {
                    (0..PER_NODE)
                        .map(|i| {
                            let p = payload(id, i);
                            (submit_retrying(sub, p.clone()), p)
                        })
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        for h in handles {
            expected.extend(h.join().expect("submitter thread"));
        }
    });
    let total = expected.len();
    assert_eq!(total, (PER_NODE as usize) * IDS.len());

    let mut orders = Vec::new();
    for (n, d) in drivers.iter().enumerate() {
        let deadline = Instant::now() + Duration::from_secs(20);
        let mut order = Vec::with_capacity(total);
        while order.len() < total {
            let left = deadline.saturating_duration_since(Instant::now());
            match d.events().recv_timeout(left) {
                Ok(Event::Deliver(del)) => {
                    let want = expected
                        .get(&del.id)
                        .expect("delivered a message nobody sent");
                    assert_eq!(&del.payload, want, "payload of {:?}", del.id);
                    order.push(del.id);
                }
                Ok(Event::ConfigChange(c)) => panic!("node {} changed configuration: {c:?}", n + 1),
                Ok(_) => {}
                Err(RecvTimeoutError::Timeout) => {
                    panic!(
                        "node {} delivered {} of {total} in 20 s",
                        n + 1,
                        order.len()
                    )
                }
                Err(e) => panic!("events of node {}: {e}", n + 1),
            }
        }
        orders.push(order);
    }
    for (n, order) in orders.iter().enumerate().skip(1) {
        assert_eq!(
            order,
            &orders[0],
            "node {} order differs from node 1",
            n + 1
        );
    }
    // Per sender, in submission order (FIFO within one priority).
    for &id in &IDS {
        let nos: Vec<u64> = orders[0]
            .iter()
            .filter(|m| m.sender == NodeId(id))
            .map(|m| m.no)
            .collect();
        assert!(
            nos.windows(2).all(|w| w[0] < w[1]),
            "node {id} out of order"
        );
    }
}

/// Three drivers on the in-memory network form one ring and agree on the order of 600
/// messages of mixed sizes (some fragmented over several frames).
#[test]
fn mem_three_nodes_total_order() {
    let net = MemNetwork::new();
    let drivers = spawn_mem(&net, &IDS, |_| {});
    wait_ring(&drivers, 3);
    all_deliver_in_one_order(&drivers);
    for d in drivers {
        let stats = d.stop().expect("stop");
        assert_eq!(stats.send_errors, 0);
        assert!(stats.frames_in > 0 && stats.frames_out > 0);
    }
}

/// The same over three kernel UDP transports in unicast mode on 127.0.0.1 (ephemeral ports).
#[test]
fn udp_three_nodes_total_order() {
    let drivers = spawn_udp(&IDS);
    wait_ring(&drivers, 3);
    all_deliver_in_one_order(&drivers);
    for d in drivers {
        d.stop().expect("stop");
    }
}

/// A driver stopped without leaving (a crash) is declared failed: the two others install a
/// 2-member ring with `failed` = [it] within 1 s (token timeout 100 ms + consensus 120 ms).
#[test]
fn crash_is_detected_within_one_second() {
    let net = MemNetwork::new();
    let mut drivers = spawn_mem(&net, &IDS, |_| {});
    wait_ring(&drivers, 3);
    let crashed = drivers.pop().expect("three drivers");
    let t0 = Instant::now();
    crashed.stop().expect("stop");
    for d in &drivers {
        let (c, _) = wait_config(d, Duration::from_secs(1), |c| c.members.len() == 2);
        assert_eq!(c.members, vec![NodeId(1), NodeId(2)]);
        assert_eq!(c.failed, vec![NodeId(3)]);
        assert!(c.left.is_empty(), "{c:?}");
    }
    assert!(t0.elapsed() < Duration::from_secs(1), "{:?}", t0.elapsed());
}

/// A graceful leave is classified as `left` (not `failed`), and the survivors install the
/// new ring well before the 100 ms token timeout would have fired (bound: 100 ms from the
/// leave, measured on the test thread).
#[test]
fn leave_is_announced_and_fast() {
    let net = MemNetwork::new();
    let mut drivers = spawn_mem(&net, &IDS, |_| {});
    wait_ring(&drivers, 3);
    let leaver = drivers.pop().expect("three drivers");
    let t0 = Instant::now();
    leaver.leave();
    let mut elapsed = Vec::new();
    for d in &drivers {
        let (c, _) = wait_config(d, Duration::from_secs(1), |c| c.members.len() == 2);
        elapsed.push(t0.elapsed());
        assert_eq!(c.members, vec![NodeId(1), NodeId(2)]);
        assert_eq!(c.left, vec![NodeId(3)]);
        assert!(c.failed.is_empty(), "{c:?}");
    }
    assert!(
        elapsed.iter().all(|e| *e < Duration::from_millis(100)),
        "new ring after {elapsed:?}"
    );
    // The leaver's thread ends by itself: its events channel disconnects and submits fail.
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        match leaver
            .events()
            .recv_timeout(deadline.saturating_duration_since(Instant::now()))
        {
            Ok(_) => {}
            Err(RecvTimeoutError::Disconnected) => break,
            Err(RecvTimeoutError::Timeout) => panic!("driver thread still running after leave"),
        }
    }
    assert_eq!(
        leaver.submit(
            Priority::NORMAL,
            DeliveryKind::Agreed,
            Bytes::from_static(b"x")
        ),
        Err(DriverSubmitError::Stopped)
    );
    leaver.stop().expect("stop after leave");
}

/// With room for 4 queued messages on a single-node ring, a burst of 40 large submits queued
/// at once (each about 70 frames, while a token visit sends at most 17) is partly refused
/// with `Backpressure`, and every accepted message is delivered, in order. (The burst is
/// queued without waiting, so it reaches the core within one loop iteration: one synchronous
/// submit at a time would race the token, and the queue may drain between two of them.)
#[test]
fn backpressure_reaches_the_submitter() {
    let net = MemNetwork::new();
    let drivers = spawn_mem(&net, &[1], |c| c.max_queued_messages = 4);
    let d = &drivers[0];
    wait_config(d, Duration::from_secs(5), |c| c.members == vec![NodeId(1)]);
    let submitter = d.submitter();
    let (answers_tx, answers) = std::sync::mpsc::channel();
    for i in 0..40u32 {
        let p = Bytes::from(vec![i as u8; 100_000]);
        let tx = answers_tx.clone();
        submitter
            .try_submit_with(
                Priority::NORMAL,
                DeliveryKind::Agreed,
                p,
                Box::new(move |r| {
                    let _ = tx.send((i, r));
                }),
            )
            .expect("40 requests fit the request queue");
    }
    let mut accepted = Vec::new();
    let mut refused = 0;
    for expected in 0..40u32 {
        let (i, r) = answers
            .recv_timeout(Duration::from_secs(10))
            .expect("an answer for every request");
        assert_eq!(i, expected, "answers come in request order");
        match r {
            Ok(id) => accepted.push(id),
            Err(SubmitError::Backpressure) => refused += 1,
            Err(e) => panic!("submit: {e}"),
        }
    }
    assert!(refused > 0, "no backpressure in a burst of 40 x 100 kB");
    assert!(!accepted.is_empty());
    let mut delivered = Vec::new();
    let mut blocked = false;
    let deadline = Instant::now() + Duration::from_secs(20);
    while delivered.len() < accepted.len() {
        match d
            .events()
            .recv_timeout(deadline.saturating_duration_since(Instant::now()))
        {
            Ok(Event::Deliver(del)) => {
                assert_eq!(del.payload.len(), 100_000);
                delivered.push(del.id);
            }
            Ok(Event::FlowControl(srp::FlowControl::Blocked)) => blocked = true,
            Ok(_) => {}
            Err(e) => panic!("delivered {} of {}: {e}", delivered.len(), accepted.len()),
        }
    }
    assert_eq!(delivered, accepted);
    assert!(blocked, "no FlowControl::Blocked event");
}

/// Node `id` attached to `net`, and a driver configuration naming only itself.
fn lone_node(net: &MemNetwork, id: u32) -> (dataplane::mem::MemTransport, DriverConfig) {
    let t = net
        .attach_node(dataplane::NodeId(id), MemConfig::default())
        .expect("attach");
    let cfg = config(id, &[member(id, t.local_addr())]);
    (t, cfg)
}

/// An invalid core configuration is reported by `spawn`, not by a dead thread.
#[test]
fn invalid_config_is_refused_at_spawn() {
    let net = MemNetwork::new();
    let (t, mut cfg) = lone_node(&net, 1);
    cfg.totem.max_frame_size = 10;
    assert!(matches!(
        driver::spawn(t, cfg),
        Err(driver::DriverError::Config(_))
    ));
}

/// A nice value outside -20..=19 is refused by `spawn`, naming it.
#[test]
fn nice_out_of_range_is_refused_at_spawn() {
    let net = MemNetwork::new();
    let (t, mut cfg) = lone_node(&net, 1);
    cfg.nice = Some(20);
    match driver::spawn(t, cfg) {
        Err(e @ driver::DriverError::Nice(_)) => {
            let source = std::error::Error::source(&e).map(ToString::to_string);
            assert!(source.is_some_and(|s| s.contains("20")), "{e:?}");
        }
        Err(e) => panic!("expected the nice value refused, got {e}"),
        Ok(_) => panic!("a nice value of 20 was accepted"),
    }
}

/// The driver thread, and only it, gets the configured nice value (a higher one: no privilege
/// needed).
#[test]
fn the_driver_thread_gets_its_nice_value() {
    // The nice value of this process's thread named `name`, or of the calling thread (`None`).
    fn nice_of(name: Option<&str>) -> Option<i32> {
        let stats: Vec<String> = match name {
            None => vec![std::fs::read_to_string("/proc/thread-self/stat").ok()?],
            Some(_) => std::fs::read_dir("/proc/self/task")
                .ok()?
                .map_while(Result::ok)
                .filter_map(|t| std::fs::read_to_string(t.path().join("stat")).ok())
                .collect(),
        };
        stats.iter().find_map(|stat| {
            let (open, close) = (stat.find('(')?, stat.rfind(')')?);
            if name.is_some_and(|n| n != &stat[open + 1..close]) {
                return None;
            }
            // Fields after the name: state is field 3, nice field 19.
            stat[close + 2..].split(' ').nth(16)?.parse().ok()
        })
    }
    let before = nice_of(None).expect("own nice value");
    let target = (before + 4).min(19);
    assert_ne!(target, before, "the test runs at nice 19: nothing to raise");
    let net = MemNetwork::new();
    let (t, mut cfg) = lone_node(&net, 41);
    cfg.nice = Some(target);
    let d = driver::spawn(t, cfg).expect("spawn driver");
    assert_eq!(nice_of(Some("totem-41")), Some(target));
    assert_eq!(
        nice_of(None),
        Some(before),
        "the spawning thread keeps its value"
    );
    d.stop().expect("stop");
}

/// The executive's path: events into a sink of the caller's, submits answered through a
/// callback on the driver thread (never blocking the caller), and the status snapshot.
#[test]
fn sink_async_submit_and_status() {
    use std::sync::mpsc;

    struct Sink(mpsc::Sender<Option<Event>>);
    impl driver::EventSink for Sink {
        fn event(&mut self, event: Event) {
            let _ = self.0.send(Some(event));
        }
        fn closed(&mut self) {
            let _ = self.0.send(None);
        }
    }

    let net = MemNetwork::new();
    let members: Vec<Member> = IDS
        .iter()
        .map(|&id| member(id, MemNetwork::node_addr(dataplane::NodeId(id))))
        .collect();
    let mut sinks = Vec::new();
    let drivers: Vec<Driver> = IDS
        .iter()
        .map(|&id| {
            let t = net
                .attach_node(dataplane::NodeId(id), MemConfig::default())
                .expect("attach");
            let (tx, rx) = mpsc::channel();
            sinks.push(rx);
            driver::spawn_with(t, config(id, &members), Sink(tx)).expect("spawn driver")
        })
        .collect();
    // The regular configuration with all three arrives through the sink, not `events()`.
    for rx in &sinks {
        let deadline = Instant::now() + Duration::from_secs(5);
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match rx.recv_timeout(left).expect("a 3-member ring within 5 s") {
                Some(Event::ConfigChange(c))
                    if c.kind == ConfigKind::Regular && c.members.len() == 3 =>
                {
                    break;
                }
                Some(_) => {}
                None => panic!("driver ended"),
            }
        }
    }
    assert!(
        drivers[0].events().try_recv().is_err(),
        "events() stays empty"
    );

    // The status follows the ring within STATUS_INTERVAL.
    std::thread::sleep(driver::STATUS_INTERVAL * 2);
    let status = drivers[1].status();
    assert_eq!(status.state, srp::MembState::Operational);
    assert_eq!(status.members, vec![NodeId(1), NodeId(2), NodeId(3)]);
    assert!(status.stats.core.tokens_accepted > 0);

    // Asynchronous submit: the callback gets the message id, and the message is delivered.
    let (done_tx, done_rx) = mpsc::channel();
    drivers[1]
        .submitter()
        .try_submit_with(
            Priority::default(),
            DeliveryKind::Agreed,
            Bytes::from_static(b"async"),
            Box::new(move |r| {
                let _ = done_tx.send(r);
            }),
        )
        .expect("queued");
    let id = done_rx
        .recv_timeout(Duration::from_secs(5))
        .expect("callback called")
        .expect("accepted");
    assert_eq!(id.sender, NodeId(2));
    for rx in &sinks {
        let deadline = Instant::now() + Duration::from_secs(5);
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            if let Some(Event::Deliver(d)) = rx.recv_timeout(left).expect("delivered in 5 s")
                && d.id == id
            {
                assert_eq!(&d.payload[..], b"async");
                break;
            }
        }
    }

    // Stopping ends the sink with `closed`; a later submit reports Stopped.
    let submitter = drivers[0].submitter();
    for d in drivers {
        d.stop().expect("stop");
    }
    for rx in &sinks {
        loop {
            match rx.recv_timeout(Duration::from_secs(5)) {
                Ok(Some(_)) => {}
                Ok(None) => break,
                Err(e) => panic!("the sink was not closed: {e}"),
            }
        }
    }
    let r = submitter.try_submit_with(
        Priority::default(),
        DeliveryKind::Agreed,
        Bytes::from_static(b"late"),
        Box::new(|_| panic!("must not be called")),
    );
    assert_eq!(r, Err(driver::TrySubmitError::Stopped));
}

/// Run to completion: a sink's `run` is called on the driver thread with the core, sees the
/// deliveries of the iteration, and submits straight into the core; input queued elsewhere
/// reaches it through `Submitter::notify`. Node 1 answers every "ping" it delivers with a
/// "pong" submitted from `run`; node 2's pings come from the test thread through its sink's
/// queue. Every node delivers every ping and every pong, in one order.
#[test]
fn sink_runs_on_the_driver_thread_and_submits() {
    use std::sync::{Arc, Mutex};

    const PINGS: u32 = 50;

    struct Sink {
        id: u32,
        /// Payloads for this node to submit (from the test thread).
        queue: crossbeam_channel::Receiver<Bytes>,
        /// Pings delivered and not yet answered (node 1 only).
        to_answer: Vec<Bytes>,
        delivered: Arc<Mutex<Vec<Bytes>>>,
        /// `run` was called on another thread than the driver's.
        wrong_thread: Arc<Mutex<bool>>,
    }
    impl driver::EventSink for Sink {
        fn event(&mut self, event: Event) {
            if let Event::Deliver(d) = event {
                if self.id == 1 && d.payload.starts_with(b"ping") {
                    self.to_answer.push(d.payload.clone());
                }
                self.delivered.lock().unwrap().push(d.payload);
            }
        }
        fn run(&mut self, core: &mut srp::Totem) -> Option<Duration> {
            let on_driver = std::thread::current()
                .name()
                .is_some_and(|n| n == format!("totem-{}", self.id));
            if !on_driver {
                *self.wrong_thread.lock().unwrap() = true;
            }
            // Answer what was delivered; a refused submit is retried at the next call.
            while let Some(p) = self.to_answer.first() {
                let pong = Bytes::from([b"pong", &p[4..]].concat());
                if core
                    .submit(Priority::default(), DeliveryKind::Agreed, pong)
                    .is_err()
                {
                    return Some(Duration::from_millis(1));
                }
                self.to_answer.remove(0);
            }
            while let Ok(p) = self.queue.try_recv() {
                core.submit(Priority::default(), DeliveryKind::Agreed, p)
                    .expect("the test queues few messages");
            }
            None
        }
    }

    let transports: Vec<UdpTransport> = IDS
        .iter()
        .map(|_| {
            UdpTransport::new(UdpConfig::unicast("127.0.0.1:0".parse().unwrap())).expect("bind")
        })
        .collect();
    let members: Vec<Member> = IDS
        .iter()
        .zip(&transports)
        .map(|(&id, t)| member(id, t.local_addr()))
        .collect();
    let wrong_thread = Arc::new(Mutex::new(false));
    let mut logs = Vec::new();
    let mut queues = Vec::new();
    let drivers: Vec<Driver> = IDS
        .iter()
        .zip(transports)
        .map(|(&id, t)| {
            let (tx, rx) = crossbeam_channel::unbounded();
            queues.push(tx);
            let delivered = Arc::new(Mutex::new(Vec::new()));
            logs.push(Arc::clone(&delivered));
            let sink = Sink {
                id,
                queue: rx,
                to_answer: Vec::new(),
                delivered,
                wrong_thread: Arc::clone(&wrong_thread),
            };
            driver::spawn_with(t, config(id, &members), sink).expect("spawn driver")
        })
        .collect();
    wait_status_ring(&drivers);
    for i in 0..PINGS {
        queues[1]
            .send(Bytes::from(format!("ping{i:04}")))
            .expect("queue");
        drivers[1].submitter().notify();
        if i % 10 == 0 {
            std::thread::sleep(Duration::from_millis(20));
        }
    }
    let deadline = Instant::now() + Duration::from_secs(20);
    while logs
        .iter()
        .any(|l| l.lock().unwrap().len() < 2 * PINGS as usize)
        && Instant::now() < deadline
    {
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(
        !*wrong_thread.lock().unwrap(),
        "run is called on the driver thread"
    );
    let first = logs[0].lock().unwrap().clone();
    assert_eq!(
        first.len(),
        2 * PINGS as usize,
        "every ping and pong delivered"
    );
    for l in &logs[1..] {
        assert_eq!(*l.lock().unwrap(), first, "one order at every node");
    }
    for i in 0..PINGS {
        let ping = first
            .iter()
            .position(|p| *p == format!("ping{i:04}").as_bytes())
            .expect("ping delivered");
        let pong = first
            .iter()
            .position(|p| *p == format!("pong{i:04}").as_bytes())
            .expect("pong delivered");
        assert!(ping < pong, "a pong follows its ping");
    }
}

/// Waits (30 s at most) until every driver's status shows the whole ring operational.
fn wait_status_ring(drivers: &[Driver]) {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let ok = drivers.iter().all(|d| {
            let s = d.status();
            s.state == srp::MembState::Operational && s.members.len() == drivers.len()
        });
        if ok {
            return;
        }
        assert!(Instant::now() < deadline, "the ring did not form in 30 s");
        std::thread::sleep(Duration::from_millis(20));
    }
}
