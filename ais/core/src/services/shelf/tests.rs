//! The shelf service on a perfect in-memory ring: one acceptance per event however many
//! nodes watch, a cleared SEL's reused record ids, a restarted node that learns the seen-set
//! in the sync, the bounded set, and followers.

use super::*;
use crate::exec::testkit::{TestNode, TestRing};
use ais_proto::shelf::ShelfEventKind;
use dataplane::stats::Visit;

fn service(defects: ShelfDefects, capacity: usize) -> Box<dyn Service + Send> {
    Box::new(Shelf::with_defects(ShelfConfig { capacity }, defects))
}

fn ring_with(n: u32, defects: ShelfDefects, capacity: usize) -> TestRing {
    let mut r = TestRing::new(n, move || vec![service(defects, capacity)]);
    r.flush();
    for i in 1..=n {
        r.node(i).connect(1, 100, ID);
        r.node(i).connect(2, 101, ID);
        r.node(i).core.request_value(2, 5, &Request::Follow(true));
    }
    r.flush();
    for i in 1..=n {
        r.node(i).take();
    }
    r
}

fn ev(record: u16, timestamp: u32) -> ShelfEvent {
    ShelfEvent {
        key: ShelfKey {
            shelf: Bytes::from_static(b"shelf-a"),
            record,
            timestamp,
        },
        kind: ShelfEventKind::HotSwap {
            slot: 4,
            fru: 0,
            previous: 2,
            state: 3,
            cause: 2,
        },
    }
}

/// The watcher at `node` hands in `e`: the answer says whether it was known.
fn observe(r: &mut TestRing, node: u32, e: &ShelfEvent) -> bool {
    r.node(node)
        .core
        .request_value(1, 9, &Request::Observe(e.clone()));
    r.node(node).run();
    let replies = r.node(node).replies::<Response>();
    match replies.as_slice() {
        [(9, Reply::Service(Response::Observed { known }))] => *known,
        other => panic!("answer to Observe: {other:?}"),
    }
}

/// The events the follower at `node` was told of since the last call.
fn accepted(r: &mut TestRing, node: u32) -> Vec<ShelfKey> {
    r.node(node)
        .take()
        .iter()
        .filter_map(|e| e.callback::<Callback>())
        .map(|(conn, cb)| {
            assert_eq!(conn, 2);
            let Callback::Accepted { event, .. } = cb else {
                panic!("unexpected callback {cb:?}")
            };
            event.key
        })
        .collect()
}

#[test]
fn every_node_watching_yields_one_acceptance_per_node() {
    let mut r = ring_with(3, ShelfDefects::default(), 64);
    let e = ev(7, 1000);
    for n in 1..=3 {
        assert!(!observe(&mut r, n, &e));
    }
    r.flush();
    for n in 1..=3 {
        assert_eq!(accepted(&mut r, n), vec![e.key.clone()], "node {n}");
    }
    // Three copies went round; two were dropped at every node.
    let mut v = dataplane::stats::Collect::default();
    r.node(1).core.visit(&mut v);
    assert_eq!(v.get("shelf_accepted"), Some(1));
    assert_eq!(v.get("shelf_duplicates"), Some(2));
    // Seen again later (a reconnect reads the SEL again): known, not submitted.
    assert!(observe(&mut r, 2, &e));
    assert_eq!(r.node(2).pending(), 0);
    r.flush();
    assert!(accepted(&mut r, 1).is_empty());
}

#[test]
fn a_cleared_sel_reusing_a_record_id_is_a_new_event() {
    let mut r = ring_with(2, ShelfDefects::default(), 64);
    let before = ev(1, 1000);
    let after = ev(1, 1300);
    observe(&mut r, 1, &before);
    r.flush();
    assert!(!observe(&mut r, 2, &after));
    r.flush();
    assert_eq!(accepted(&mut r, 1), vec![before.key, after.key]);
}

/// Node 3 restarts: its new incarnation learns the seen-set in the sync and does not accept
/// an old event its watcher reports again; with the sync defect it does.
fn restart_and_rereport(defects: ShelfDefects) -> Vec<ShelfKey> {
    let mut r = ring_with(3, defects, 64);
    let old = ev(3, 500);
    observe(&mut r, 1, &old);
    r.flush();
    r.config(&[1, 2], &[1, 2]);
    r.flush();
    r.nodes[2] = TestNode::new(3, vec![service(defects, 64)]);
    r.config(&[1, 2, 3], &[1, 2, 3]);
    r.flush();
    r.node(3).connect(1, 100, ID);
    r.node(3).connect(2, 101, ID);
    r.node(3).core.request_value(2, 5, &Request::Follow(true));
    r.flush();
    r.node(3).take();
    observe(&mut r, 3, &old);
    r.flush();
    accepted(&mut r, 3)
}

#[test]
fn a_restarted_node_learns_what_was_accepted() {
    assert!(restart_and_rereport(ShelfDefects::default()).is_empty());
    let broken = ShelfDefects {
        no_sync: true,
        ..ShelfDefects::default()
    };
    assert_eq!(restart_and_rereport(broken).len(), 1);
}

#[test]
fn the_two_sides_of_a_partition_merge_their_seen_sets() {
    let mut r = ring_with(4, ShelfDefects::default(), 64);
    r.config(&[1, 2], &[1, 2]);
    r.flush();
    let a = ev(1, 100);
    observe(&mut r, 1, &a);
    r.flush();
    r.config(&[3, 4], &[3, 4]);
    r.flush();
    let b = ev(2, 101);
    observe(&mut r, 3, &b);
    r.flush();
    for n in 1..=4 {
        accepted(&mut r, n);
    }
    r.config(&[1, 2, 3, 4], &[1, 2, 3, 4]);
    r.flush();
    // Both events are known everywhere: reported anywhere again, neither is accepted.
    assert!(observe(&mut r, 4, &a));
    assert!(observe(&mut r, 1, &b));
    r.flush();
    for n in 1..=4 {
        assert!(accepted(&mut r, n).is_empty(), "node {n}");
    }
}

#[test]
fn the_seen_set_is_bounded_and_evicts_the_oldest() {
    let mut r = ring_with(2, ShelfDefects::default(), 2);
    for (i, rec) in [1u16, 2, 3].into_iter().enumerate() {
        observe(&mut r, 1, &ev(rec, 100 + i as u32));
        r.flush();
    }
    let mut v = dataplane::stats::Collect::default();
    r.node(2).core.visit(&mut v);
    assert_eq!(v.get("shelf_seen"), Some(2));
    assert_eq!(v.get("shelf_evicted"), Some(1));
    assert!(observe(&mut r, 2, &ev(3, 102)));
    // The evicted oldest is accepted again: the documented limit of the bound.
    assert!(!observe(&mut r, 2, &ev(1, 100)));
}

#[test]
fn without_dedup_every_copy_is_accepted() {
    let defects = ShelfDefects {
        no_dedup: true,
        ..ShelfDefects::default()
    };
    let mut r = ring_with(2, defects, 64);
    let e = ev(9, 9);
    observe(&mut r, 1, &e);
    observe(&mut r, 2, &e);
    r.flush();
    assert_eq!(accepted(&mut r, 1).len(), 2);
}
