//! EVT with three real executives under a partition (network namespaces): what the service
//! promises (`ais/core/src/services/evt/mod.rs`) checked end to end through the client
//! library.
//!
//! {1} | {2,3}: each side publishes a retained and an unretained event, delivered only on its
//! own side. After the heal every subscription is delivered the other side's retained event
//! (once) and never its unretained one; a new subscription at any node gets both retained
//! events; events published after the heal reach the three nodes in one order.
//!
//! Assumes: a loaded 2-core machine (every wait is generous); the test runs as root with `ip`
//! from iproute2 and creates and deletes its own namespaces (it fails, never skips, without
//! them).

mod common;

use std::time::Duration;

use ais_client::Error;
use ais_client::evt::{Event, Evt, EvtEvent, OPEN_CREATE, OPEN_PUBLISHER, OPEN_SUBSCRIBER};
use common::cluster::{Cluster, Mode, lab_netns, netns_config};

const LONG: Duration = Duration::from_secs(30);
const ALL: u8 = OPEN_CREATE | OPEN_PUBLISHER | OPEN_SUBSCRIBER;
const HOUR: u64 = 3_600_000_000_000;

fn evt(c: &Cluster, i: usize) -> Evt {
    let deadline = std::time::Instant::now() + LONG;
    loop {
        match Evt::connect(&c.node(i).socket) {
            Ok(e) => return e,
            Err(e) if std::time::Instant::now() > deadline => panic!("connect {}: {e}", i + 1),
            Err(_) => std::thread::sleep(Duration::from_millis(20)),
        }
    }
}

fn again<T>(op: impl FnMut() -> Result<T, Error>) -> Result<T, Error> {
    common::ckpt::again(LONG, op)
}

fn event(pattern: &[u8], priority: u8, retention: u64) -> Event {
    let mut e = Event::new();
    e.set_attributes(&[pattern], priority, retention, b"evt-cluster")
        .expect("attributes");
    e.set_data(pattern);
    e
}

/// (subscription, event id) of every delivery until none comes for `quiet`.
fn drain(e: &mut Evt, quiet: Duration) -> Vec<(u32, u64)> {
    let mut got = Vec::new();
    while let Some(ev) = e.dispatch(Some(quiet)).expect("dispatch") {
        if let EvtEvent::Deliver(d) = ev {
            assert!(!d.is_lost(), "nothing should be lost here");
            got.push((d.subscription, d.header.id));
        }
    }
    got
}

#[test]
fn after_a_partition_retained_events_cross_over_once_and_order_is_one() {
    let lab = netlab::Lab::new(3, 1500).expect("network-namespace lab (needs root and ip)");
    let mut c = Cluster::new(
        "evt-partition",
        3,
        |node| netns_config(Mode::Unicast, 1500, node, &lab),
        lab_netns(&lab),
    );
    c.start_all();
    for i in 0..3 {
        c.wait_ring(i, &[1, 2, 3], LONG);
    }
    let mut e: Vec<Evt> = (0..3).map(|i| evt(&c, i)).collect();
    let h: Vec<_> = (0..3)
        .map(|i| again(|| e[i].open(b"ch", ALL)).expect("open"))
        .collect();
    for i in 0..3 {
        again(|| e[i].subscribe(h[i], 1, Vec::new())).expect("subscribe");
    }

    // {1} | {2,3}.
    lab.cut(1).expect("cut host 1");
    c.wait_ring(0, &[1], LONG);
    c.wait_ring(1, &[2, 3], LONG);
    c.wait_ring(2, &[2, 3], LONG);
    let ra = again(|| e[0].publish(h[0], &event(b"ra", 1, HOUR))).expect("publish A");
    let na = again(|| e[0].publish(h[0], &event(b"na", 1, 0))).expect("publish A");
    let rb = again(|| e[2].publish(h[2], &event(b"rb", 1, HOUR))).expect("publish B");
    let nb = again(|| e[2].publish(h[2], &event(b"nb", 1, 0))).expect("publish B");
    let quiet = Duration::from_secs(1);
    assert_eq!(drain(&mut e[0], quiet), [(1, ra), (1, na)]);
    for i in [1, 2] {
        assert_eq!(
            drain(&mut e[i], quiet),
            [(1, rb), (1, nb)],
            "node {}",
            i + 1
        );
    }

    lab.heal(1).expect("heal host 1");
    for i in 0..3 {
        c.wait_ring(i, &[1, 2, 3], LONG);
    }
    // The other side's retained event, once; never its unretained one.
    let quiet = Duration::from_secs(3);
    assert_eq!(drain(&mut e[0], quiet), [(1, rb)]);
    for i in [1, 2] {
        assert_eq!(drain(&mut e[i], quiet), [(1, ra)], "node {}", i + 1);
    }
    // A new subscription anywhere gets both retained events.
    let mut both = vec![ra, rb];
    both.sort_unstable();
    for i in 0..3 {
        again(|| e[i].subscribe(h[i], 2, Vec::new())).expect("subscribe");
        let mut got: Vec<u64> = drain(&mut e[i], Duration::from_secs(1))
            .into_iter()
            .map(|(sub, id)| {
                assert_eq!(sub, 2);
                id
            })
            .collect();
        got.sort_unstable();
        assert_eq!(got, both, "node {}", i + 1);
    }
    // After the heal, one order at every node (one priority, publishers on two nodes).
    let mut sent = Vec::new();
    for k in 0..10u8 {
        let i = usize::from(k % 2) * 2;
        let name = [b'x', b'0' + k];
        sent.push(again(|| e[i].publish(h[i], &event(&name, 2, 0))).expect("publish"));
    }
    let orders: Vec<Vec<u64>> = (0..3)
        .map(|i| {
            drain(&mut e[i], Duration::from_secs(1))
                .into_iter()
                .filter(|(sub, _)| *sub == 1)
                .map(|(_, id)| id)
                .collect()
        })
        .collect();
    assert_eq!(orders[0].len(), 10, "{orders:?}");
    assert!(orders.iter().all(|o| *o == orders[0]), "{orders:?}");
    let mut a = orders[0].clone();
    a.sort_unstable();
    sent.sort_unstable();
    assert_eq!(a, sent);
}
