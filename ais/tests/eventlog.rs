//! The event log of a real run: three Totem drivers on real threads over the in-memory network
//! record their events with `ais::eventlog::EventLogWriter`, one file per node, and the
//! checker (`totem_evlog::checker`) accepts the files; a corrupted file is rejected.
//!
//! Events are recorded on each driver thread (through an `EventSink`), and each send in the
//! submit callback, which also runs on the driver thread: the log then has every node's events
//! in the order the node produced them, the send before the message's delivery, and `t` taken
//! when the event happened (a consumer thread recording `stored` late could make another
//! node's safe delivery look premature to the checker).

use std::path::{Path, PathBuf};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, Sender};
use std::sync::{Arc, Barrier, Mutex, PoisonError};
use std::time::{Duration, Instant};

use ais::eventlog::{EventLogWriter, check_files};
use bytes::Bytes;
use dataplane::Member;
use dataplane::mem::{MemConfig, MemNetwork};
use totem_dpdk::driver::{self, Driver, DriverConfig, EventSink, Submitter, TrySubmitError};
use totem_dpdk::srp::{self, ConfigKind, Event, SubmitError};
use totem_dpdk::{DeliveryKind, MsgId, NodeId, Priority};

const IDS: [u32; 3] = [1, 2, 3];
const PER_NODE: u32 = 150;

type SharedLog = Arc<Mutex<Option<EventLogWriter>>>;

fn with_log(log: &SharedLog, f: impl FnOnce(&mut EventLogWriter)) {
    if let Some(w) = log.lock().unwrap_or_else(PoisonError::into_inner).as_mut() {
        f(w);
    }
}

/// Records every event in the node's log, then hands it to the test thread.
struct LogSink {
    log: SharedLog,
    tx: Sender<Event>,
}

impl EventSink for LogSink {
    fn event(&mut self, event: Event) {
        with_log(&self.log, |w| w.event(&event).expect("event log write"));
        let _ = self.tx.send(event);
    }
}

/// What a node's test thread needs (the `Driver` itself stays on the main thread).
struct Node {
    id: u32,
    sub: Submitter,
    log: SharedLog,
    events: Receiver<Event>,
}

fn temp_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("ais-eventlog-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("temp dir");
    dir
}

fn spawn_nodes(net: &MemNetwork, dir: &Path) -> (Vec<Driver>, Vec<Node>, Vec<PathBuf>) {
    let members: Vec<Member> = IDS
        .iter()
        .map(|&id| Member {
            id: dataplane::NodeId(id),
            addr: MemNetwork::node_addr(dataplane::NodeId(id)),
        })
        .collect();
    let mut drivers = Vec::new();
    let mut nodes = Vec::new();
    let mut paths = Vec::new();
    for &id in &IDS {
        let path = dir.join(format!("node{id}.jsonl"));
        let writer = EventLogWriter::open(&path, NodeId(id)).expect("open event log");
        assert!(!writer.restarted());
        let log: SharedLog = Arc::new(Mutex::new(Some(writer)));
        let (tx, events) = mpsc::channel();
        let transport = net
            .attach_node(dataplane::NodeId(id), MemConfig::default())
            .expect("attach");
        let mut cfg = DriverConfig::new(srp::Config::new(NodeId(id), Vec::new()), members.clone());
        cfg.totem.observe = true;
        let sink = LogSink {
            log: Arc::clone(&log),
            tx,
        };
        let driver = driver::spawn_with(transport, cfg, sink).expect("spawn driver");
        nodes.push(Node {
            id,
            sub: driver.submitter(),
            log,
            events,
        });
        drivers.push(driver);
        paths.push(path);
    }
    (drivers, nodes, paths)
}

/// Message `i` of node `id`: sizes from 10 bytes to several frames.
fn payload(id: u32, i: u32) -> Bytes {
    let len = [10, 100, 1000, 3000][(i % 4) as usize];
    let mut v = Vec::with_capacity(len);
    v.extend_from_slice(&id.to_be_bytes());
    v.extend_from_slice(&i.to_be_bytes());
    v.resize(len, (id * 31 + i) as u8);
    Bytes::from(v)
}

/// Counts the deliveries among the events read so far.
fn drain(events: &Receiver<Event>, delivered: &mut usize) {
    while let Ok(ev) = events.try_recv() {
        if matches!(ev, Event::Deliver(_)) {
            *delivered += 1;
        }
    }
}

/// Submits on `sub`, logging the `send` in the submit callback (on the driver thread, before
/// the core can deliver the message); retries on backpressure.
fn submit_logged(
    sub: &Submitter,
    log: &SharedLog,
    events: &Receiver<Event>,
    delivered: &mut usize,
    kind: DeliveryKind,
    p: &Bytes,
) -> MsgId {
    let prio = Priority::NORMAL;
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        assert!(Instant::now() < deadline, "backpressure for 15 s");
        let (reply, answer) = mpsc::sync_channel(1);
        let done = {
            let log = Arc::clone(log);
            let p = p.clone();
            Box::new(move |result: Result<MsgId, SubmitError>| {
                if let Ok(id) = result {
                    with_log(&log, |w| {
                        w.send(id, kind, prio.level(), &p).expect("event log write");
                    });
                }
                let _ = reply.send(result);
            })
        };
        match sub.try_submit_with(prio, kind, p.clone(), done) {
            Ok(()) => match answer.recv_timeout(Duration::from_secs(10)) {
                Ok(Ok(id)) => return id,
                Ok(Err(SubmitError::Backpressure)) => {}
                Ok(Err(e)) => panic!("submit refused: {e}"),
                Err(e) => panic!("no answer to a submit: {e}"),
            },
            Err(TrySubmitError::QueueFull) => {}
            Err(e) => panic!("submit failed: {e}"),
        }
        drain(events, delivered);
        std::thread::sleep(Duration::from_millis(1));
    }
}

/// One node's test thread: waits for the 3-node ring, submits `PER_NODE` messages (agreed
/// and safe alternately), reads events until it delivered every node's messages, then closes
/// its log once every node is done.
fn run_node(node: &Node, barrier: &Barrier, total: usize) {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match node.events.recv_timeout(left) {
            Ok(Event::ConfigChange(c)) if c.kind == ConfigKind::Regular && c.members.len() == 3 => {
                break;
            }
            Ok(Event::Deliver(d)) => {
                panic!("node {} delivered {:?} before the ring", node.id, d.id)
            }
            Ok(_) => {}
            Err(e) => panic!("node {}: no 3-node ring within 10 s: {e}", node.id),
        }
    }
    barrier.wait();

    let mut delivered = 0;
    for i in 0..PER_NODE {
        let kind = if i % 2 == 0 {
            DeliveryKind::Agreed
        } else {
            DeliveryKind::Safe
        };
        let p = payload(node.id, i);
        let id = submit_logged(&node.sub, &node.log, &node.events, &mut delivered, kind, &p);
        assert_eq!(id.sender, NodeId(node.id));
        if i % 16 == 15 {
            drain(&node.events, &mut delivered);
            with_log(&node.log, |w| w.flush().expect("flush"));
        }
    }

    let deadline = Instant::now() + Duration::from_secs(30);
    while delivered < total {
        let left = deadline.saturating_duration_since(Instant::now());
        match node.events.recv_timeout(left) {
            Ok(Event::Deliver(_)) => delivered += 1,
            Ok(_) => {}
            Err(RecvTimeoutError::Timeout) => {
                panic!("node {} delivered {delivered} of {total} in 30 s", node.id)
            }
            Err(e) => panic!("events of node {}: {e}", node.id),
        }
        if delivered % 64 == 0 {
            with_log(&node.log, |w| w.flush().expect("flush"));
        }
    }
    with_log(&node.log, |w| w.flush().expect("flush"));
    // Close the logs only when every node delivered everything: what happens after (the
    // drivers stopping one by one) is not part of the checked run.
    barrier.wait();
    let writer = node
        .log
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .take();
    drop(writer);
}

/// Swaps two `deliver` lines (of different `seq`) in `path`.
fn swap_deliveries(path: &Path) {
    let text = std::fs::read_to_string(path).expect("read log");
    let mut lines: Vec<&str> = text.lines().collect();
    let seq_of = |line: &str| -> Option<String> {
        let rest = line.split(r#""seq":"#).nth(1)?;
        Some(rest.chars().take_while(char::is_ascii_digit).collect())
    };
    let delivers: Vec<usize> = (0..lines.len())
        .filter(|&i| lines[i].contains(r#""ev":"deliver""#))
        .collect();
    let first = delivers[0];
    let other = delivers[1..]
        .iter()
        .copied()
        .find(|&i| seq_of(lines[i]) != seq_of(lines[first]))
        .expect("deliveries of two different seqs");
    lines.swap(first, other);
    let mut out = lines.join("\n");
    out.push('\n');
    std::fs::write(path, out).expect("write log");
}

#[test]
fn real_run_passes_the_checker_and_corruption_is_caught() {
    let dir = temp_dir("real-run");
    let net = MemNetwork::new();
    let (drivers, nodes, paths) = spawn_nodes(&net, &dir);
    let total = PER_NODE as usize * IDS.len();
    let barrier = Barrier::new(IDS.len());
    std::thread::scope(|s| {
        let handles: Vec<_> = nodes
            .into_iter()
            .map(|node| {
                let barrier = &barrier;
                s.spawn(move || run_node(&node, barrier, total))
            })
            .collect();
        for h in handles {
            h.join().expect("node thread");
        }
    });
    for driver in drivers {
        driver.stop().expect("driver stop");
    }

    let report = check_files(&paths).expect("read the logs");
    assert!(report.is_ok(), "{report}");
    assert_eq!(report.sends, total as u64);
    assert_eq!(report.delivered, (total * IDS.len()) as u64);
    assert_eq!(report.nodes, IDS.len() as u64);
    assert!(report.stored > 0, "no stored events for safe messages");
    assert_eq!((report.crashes, report.restarts), (0, 0));

    swap_deliveries(&paths[1]);
    let report = check_files(&paths).expect("read the logs");
    assert!(
        !report.is_ok(),
        "a swapped delivery order passed the checker"
    );
    assert!(
        report
            .violated()
            .contains(&totem_evlog::checker::Property::TotalOrder),
        "expected a total-order violation: {report}"
    );

    let _ = std::fs::remove_dir_all(&dir);
}
