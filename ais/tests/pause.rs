//! A paused executive must not split the others (issue 14): three `aisexec` under CPG load
//! (every node sends and receives), node 3's process stopped with SIGSTOP twenty times for a
//! random 0.2 to 2 s (past the 100 ms token timeout, so node 3 drops out of the ring each
//! time) and resumed. Nodes 1 and 2 never stop: from the first ring they share, every regular
//! configuration either of them installs contains the other, they install the same sequence
//! of rings, and neither reports the other failed. The checker passes on all three event
//! logs, and every CPG message is delivered once, in one order: nodes 1 and 2 deliver the same
//! sequence, with every message of nodes 1 and 2 and of node 3 all but those node 3 delivered
//! in a transitional configuration without them (stamped just before a pause, sent after
//! it), and node 3's deliveries follow that order. Run on loopback and across network
//! namespaces (kernel UDP, unicast).
//!
//! Assumes: root for the namespaces (CI runs as root), a loaded 2-core machine. The two tests
//! take a lock so that they never run at the same time: six executives under load on two
//! cores would starve one another into real token losses. The pause durations come from a
//! seed printed at the start; `AIS_PAUSE_SEED=N` replays one.

mod common;

use std::collections::HashSet;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::{Arc, Barrier, Mutex};
use std::time::{Duration, Instant};

use ais_client::cpg::CpgEvent;
use ais_proto::ipc::Guarantee;
use common::cluster::{Cluster, Mode, wait_confchg};
use nix::sys::signal::Signal;
use rand::{Rng, SeedableRng};
use totem_dpdk::NodeId;
use totem_evlog::log::{ConfigKind, LogEvent};

const GROUP: &[u8] = b"pause";
const LONG: Duration = Duration::from_secs(20);
const PAUSES: usize = 20;

static ONE_AT_A_TIME: Mutex<()> = Mutex::new(());

/// Deliveries seen by one node's client, as (sender node, message index).
type Order = Vec<(u32, u32)>;

#[test]
fn paused_node_splits_nobody_on_loopback() {
    let _one = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let mut c = Cluster::loopback("pause-stable", 3, "");
    paused_node_splits_nobody(&mut c);
}

#[test]
fn paused_node_splits_nobody_across_namespaces() {
    let _one = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let lab = netlab::Lab::new(3, 1500).expect("network-namespace lab");
    let mut c = Cluster::netns("pause-stable-netns", &lab, Mode::Unicast, 1500);
    paused_node_splits_nobody(&mut c);
    drop(c);
    drop(lab);
}

fn paused_node_splits_nobody(c: &mut Cluster) {
    let seed = std::env::var("AIS_PAUSE_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| rand::rng().random::<u64>());
    eprintln!("pause durations from seed {seed} (replay: AIS_PAUSE_SEED={seed})");
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);

    c.start_all();
    for i in 0..3 {
        c.wait_ring(i, &[1, 2, 3], LONG);
    }
    let stop = Arc::new(AtomicBool::new(false));
    let done = Arc::new(AtomicBool::new(false));
    let sent: Arc<[AtomicU32; 3]> = Arc::new(Default::default());
    let orders: Arc<Mutex<Vec<Order>>> = Arc::new(Mutex::new(vec![Vec::new(); 3]));
    let joined = Arc::new(Barrier::new(4));
    let clients: Vec<_> = (0..3)
        .map(|i| {
            let mut cpg = c.cpg(i);
            let (stop, done, sent, orders, joined) = (
                Arc::clone(&stop),
                Arc::clone(&done),
                Arc::clone(&sent),
                Arc::clone(&orders),
                Arc::clone(&joined),
            );
            std::thread::spawn(move || {
                // The client's view of the group; its own messages delivered while the view
                // held no process of another node.
                let mut view: Vec<u32> = Vec::new();
                let mut alone_own: HashSet<u32> = HashSet::new();
                let me = i as u32 + 1;
                let mut note = |ev: CpgEvent| match ev {
                    CpgEvent::Deliver { sender, data, .. } => {
                        let n = u32::from_le_bytes(data[..4].try_into().expect("index"));
                        orders.lock().expect("orders")[i].push((sender.node, n));
                        if sender.node == me && view.iter().all(|&v| v == me) {
                            alone_own.insert(n);
                        }
                    }
                    CpgEvent::ConfChg { members, .. } => {
                        view = members.iter().map(|m| m.node).collect();
                    }
                };
                cpg.join(GROUP).expect("join");
                wait_confchg(
                    &mut cpg,
                    LONG,
                    |ev| matches!(ev, CpgEvent::ConfChg { members, .. } if members.len() == 3),
                );
                joined.wait();
                let mut n = 0u32;
                while !stop.load(Ordering::Relaxed) {
                    let mut m = n.to_le_bytes().to_vec();
                    m.resize(200, 0x5a);
                    let g = if n.is_multiple_of(3) {
                        Guarantee::Safe
                    } else {
                        Guarantee::Agreed
                    };
                    cpg.mcast_retry(GROUP, g, &m, Duration::from_secs(30))
                        .expect("mcast");
                    n += 1;
                    while let Some(ev) = cpg.dispatch(Some(Duration::ZERO)).expect("dispatch") {
                        note(ev);
                    }
                    std::thread::sleep(Duration::from_millis(3));
                }
                sent[i].store(n, Ordering::Relaxed);
                while !done.load(Ordering::Relaxed) {
                    if let Some(ev) = cpg
                        .dispatch(Some(Duration::from_millis(50)))
                        .expect("dispatch")
                    {
                        note(ev);
                    }
                }
                alone_own
            })
        })
        .collect();
    joined.wait();

    for k in 0..PAUSES {
        std::thread::sleep(Duration::from_millis(rng.random_range(200..=500)));
        let pause = Duration::from_millis(rng.random_range(200..=2_000));
        c.signal(2, Signal::SIGSTOP);
        std::thread::sleep(pause);
        c.signal(2, Signal::SIGCONT);
        eprintln!("pause {}: node 3 stopped for {pause:?}", k + 1);
        for i in [0, 2] {
            c.wait_ring(i, &[1, 2, 3], LONG);
        }
    }
    std::thread::sleep(Duration::from_millis(300));
    stop.store(true, Ordering::Relaxed);

    // Every sender has stopped (its count is stored); wait until nodes 1 and 2 hold every
    // message of nodes 1 and 2, and node 3 all of its own.
    let deadline = Instant::now() + LONG;
    loop {
        let counts: Vec<u32> = sent.iter().map(|s| s.load(Ordering::Relaxed)).collect();
        let from = |order: &Order, node: u32| order.iter().filter(|(s, _)| *s == node).count();
        let complete = {
            let o = orders.lock().expect("orders");
            counts.iter().all(|&n| n > 0)
                && (0..2).all(|k| {
                    from(&o[k], 1) == counts[0] as usize && from(&o[k], 2) == counts[1] as usize
                })
                && from(&o[2], 3) == counts[2] as usize
        };
        if complete {
            break;
        }
        if Instant::now() >= deadline {
            let o = orders.lock().expect("orders");
            let got: Vec<Vec<usize>> = (0..3)
                .map(|k| (1..=3).map(|s| from(&o[k], s)).collect())
                .collect();
            panic!(
                "not everything delivered within {LONG:?} (sent {counts:?}; each node's \
                 deliveries from nodes 1, 2, 3: {got:?})"
            );
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    std::thread::sleep(Duration::from_millis(300));
    done.store(true, Ordering::Relaxed);
    let alone_own: Vec<HashSet<u32>> = clients
        .into_iter()
        .map(|t| t.join().expect("client"))
        .collect();
    let sent: Vec<u32> = sent.iter().map(|s| s.load(Ordering::Relaxed)).collect();
    let orders = Arc::into_inner(orders)
        .expect("clients gone")
        .into_inner()
        .expect("orders");
    let pauses = c.counter(2, "pauses_detected");
    for i in 0..3 {
        c.terminate(i);
    }

    // One order: nodes 1 and 2 deliver the same sequence, each message once; every message of
    // nodes 1 and 2 everywhere, and node 3's own at node 3.
    assert!(
        orders[0] == orders[1],
        "nodes 1 and 2 delivered in different orders"
    );
    for (k, order) in orders.iter().enumerate() {
        let unique: HashSet<_> = order.iter().collect();
        assert_eq!(
            unique.len(),
            order.len(),
            "node {} delivered a duplicate",
            k + 1
        );
        for (node, &n) in (1u32..).zip(&sent) {
            let from: Vec<u32> = order
                .iter()
                .filter(|(s, _)| *s == node)
                .map(|&(_, i)| i)
                .collect();
            assert!(
                from.windows(2).all(|w| w[0] < w[1]),
                "node {}: node {node}'s messages out of order",
                k + 1
            );
            // Node 3 misses what the others sent while it was out of the ring.
            if (k < 2 && node < 3) || (k == 2 && node == 3) {
                // In order and without duplicates (checked above): complete iff there are n.
                assert_eq!(
                    from.len(),
                    n as usize,
                    "node {} delivered {} of node {node}'s {n} messages",
                    k + 1,
                    from.len()
                );
            }
        }
    }
    // Node 3's messages reach nodes 1 and 2, except those node 3 delivered while its view of
    // the group held no process of theirs: sent just before or during a pause, ordered after
    // the others had gone on without node 3 and before its processes were back in their views
    // (virtual synchrony: a message is delivered to the view it is delivered in).
    let at_1: HashSet<u32> = orders[0]
        .iter()
        .filter(|(s, _)| *s == 3)
        .map(|&(_, n)| n)
        .collect();
    let missing: Vec<u32> = (0..sent[2]).filter(|n| !at_1.contains(n)).collect();
    let unexplained: Vec<u32> = missing
        .iter()
        .copied()
        .filter(|n| !alone_own[2].contains(n))
        .collect();
    // The rest must be messages whose Totem frame never reached node 1: stamped and delivered
    // by node 3 in the regular configuration just before its process stopped, the frame still
    // unsent; the others formed their ring without it (extended virtual synchrony lets a node
    // the others count as failed deliver what they never see). The event logs tell how many.
    let unseen = own_messages_not_delivered_at(&c.node(2).events, &c.node(0).events);
    assert!(
        unexplained.len() <= unseen,
        "nodes 1 and 2 miss {} of node 3's messages that node 3 delivered in a view with them \
         (first: {:?}), but only {unseen} of node 3's Totem messages never reached node 1",
        unexplained.len(),
        unexplained.first()
    );
    // Node 3's deliveries follow the same order.
    let position: std::collections::HashMap<(u32, u32), usize> =
        orders[0].iter().enumerate().map(|(p, &m)| (m, p)).collect();
    let at_3: Vec<usize> = orders[2]
        .iter()
        .filter_map(|m| position.get(m).copied())
        .collect();
    assert!(
        at_3.windows(2).all(|w| w[0] < w[1]),
        "node 3 delivered in another order than nodes 1 and 2"
    );

    // Nodes 1 and 2 never lost each other.
    let rings = |node: u32| -> Vec<(String, Vec<NodeId>, Vec<NodeId>)> {
        let file = std::fs::File::open(&c.node(node as usize - 1).events).expect("event log");
        let events = totem_evlog::log::read_log(std::io::BufReader::new(file)).expect("log");
        // Up to the shutdown at the end: the first configuration with a graceful leave.
        let regular: Vec<_> = events
            .into_iter()
            .filter_map(|e| match e {
                LogEvent::Config(cfg) if cfg.kind == ConfigKind::Regular => Some(cfg),
                _ => None,
            })
            .take_while(|cfg| cfg.left.is_empty())
            .map(|cfg| (cfg.ring.to_string(), cfg.members, cfg.failed))
            .collect();
        let first = regular
            .iter()
            .position(|(_, m, _)| m.contains(&NodeId(1)) && m.contains(&NodeId(2)))
            .expect("a ring with nodes 1 and 2");
        regular[first..].to_vec()
    };
    let (r1, r2) = (rings(1), rings(2));
    for (node, other, rs) in [(1, 2, &r1), (2, 1, &r2)] {
        for (ring, members, failed) in rs {
            assert!(
                members.contains(&NodeId(other)) && !failed.contains(&NodeId(other)),
                "node {node} installed ring {ring} {members:?} (failed {failed:?}) without \
                 node {other}, which never stopped"
            );
        }
    }
    let ids = |rs: &[(String, Vec<NodeId>, Vec<NodeId>)]| -> Vec<String> {
        rs.iter().map(|(r, _, _)| r.clone()).collect()
    };
    assert_eq!(
        ids(&r1),
        ids(&r2),
        "nodes 1 and 2 installed different rings"
    );
    let report = c.check_logs();
    assert!(report.is_ok(), "{report}");
    assert!(
        pauses >= PAUSES as u64,
        "node 3 detected {pauses} pauses of {PAUSES}"
    );
    eprintln!(
        "sent {sent:?}; node 1 installed {} rings over {PAUSES} pauses; node 3 detected \
         {pauses} pauses; {} of node 3's messages delivered only in its views without nodes 1 \
         and 2",
        r1.len(),
        missing.len()
    );
}

/// Messages of node `a` (by its event log `a_log`) that it delivered before the shutdown (its
/// first configuration with a graceful leave) and that node `b` never delivered.
fn own_messages_not_delivered_at(a_log: &std::path::Path, b_log: &std::path::Path) -> usize {
    let read = |path: &std::path::Path| {
        let file = std::fs::File::open(path).expect("event log");
        totem_evlog::log::read_log(std::io::BufReader::new(file)).expect("log")
    };
    let at_b: HashSet<_> = read(b_log)
        .into_iter()
        .filter_map(|e| match e {
            LogEvent::Deliver(d) => Some(d.msg),
            _ => None,
        })
        .collect();
    let mut count = 0;
    for e in read(a_log) {
        match e {
            LogEvent::Config(cfg) if !cfg.left.is_empty() => break,
            LogEvent::Deliver(d) if d.msg.sender == d.node && !at_b.contains(&d.msg) => count += 1,
            _ => {}
        }
    }
    count
}
