//! The LCK calls on a perfect in-memory ring: each call's success and its specified errors,
//! the grant rule, deadlock detection, timeouts, orphans, departed holders, quorum and
//! merges after partitions.

use super::*;
use crate::exec::testkit::TestRing;
use crate::services::quorum::{Quorum, QuorumConfig};
use ais_proto::lck::{LOCK_NO_QUEUE, LOCK_ORPHAN};

const SEC: u64 = 1_000_000_000;

fn ring_with(n: u32, cfg: LckConfig) -> TestRing {
    let mut r = TestRing::new(n, move || {
        vec![Box::new(Lck::new(cfg)) as Box<dyn Service + Send>]
    });
    r.flush();
    r
}

fn ring_of(n: u32) -> TestRing {
    ring_with(n, LckConfig::default())
}

fn b(s: &str) -> Bytes {
    Bytes::copy_from_slice(s.as_bytes())
}

fn err(e: AisError) -> Reply<Response> {
    Reply::Error(e)
}

/// Sends `req` as request `id` and runs the ring until nothing moves: the answers to this
/// connection (by request id) and its callbacks.
fn send(
    r: &mut TestRing,
    node: u32,
    conn: u64,
    id: u64,
    req: Request,
) -> (Vec<(u64, Reply<Response>)>, Vec<Callback>) {
    r.node(node).core.request_value(conn, id, &req);
    r.flush();
    collect(r, node, conn)
}

fn collect(r: &mut TestRing, node: u32, conn: u64) -> (Vec<(u64, Reply<Response>)>, Vec<Callback>) {
    let effects = r.node(node).take();
    let replies = effects
        .iter()
        .filter_map(|e| e.reply::<Response>())
        .filter(|(c, _, _)| *c == conn)
        .map(|(_, id, r)| (id, r))
        .collect();
    let cbs = effects
        .iter()
        .filter_map(|e| e.callback::<Callback>())
        .filter(|(c, _)| *c == conn)
        .map(|(_, cb)| cb)
        .collect();
    (replies, cbs)
}

fn call(r: &mut TestRing, node: u32, conn: u64, req: Request) -> Reply<Response> {
    let (replies, _) = send(r, node, conn, 77, req.clone());
    replies
        .into_iter()
        .find(|(id, _)| *id == 77)
        .map(|(_, r)| r)
        .unwrap_or_else(|| panic!("no answer to {req:?}"))
}

fn open(r: &mut TestRing, node: u32, conn: u64, name: &str) -> u64 {
    match call(
        r,
        node,
        conn,
        Request::Open {
            name: b(name),
            flags: RESOURCE_CREATE,
        },
    ) {
        Reply::Service(Response::Opened { handle }) => handle,
        other => panic!("open {name}: {other:?}"),
    }
}

fn lock_req(handle: u64, mode: Mode, flags: u32, timeout: u64) -> Request {
    Request::Lock {
        handle,
        mode: mode.code(),
        flags,
        waiter_signal: 42,
        timeout,
    }
}

/// A synchronous lock decided at once: its id and status.
fn lock(
    r: &mut TestRing,
    node: u32,
    conn: u64,
    handle: u64,
    mode: Mode,
    flags: u32,
) -> (u64, LockStatus) {
    match call(r, node, conn, lock_req(handle, mode, flags, TIME_END)) {
        Reply::Service(Response::Locked { lock_id, status }) => (lock_id, status),
        other => panic!("lock: {other:?}"),
    }
}

/// An asynchronous lock: its id.
fn lock_async(
    r: &mut TestRing,
    node: u32,
    conn: u64,
    handle: u64,
    mode: Mode,
    inv: u64,
) -> (u64, Vec<Callback>) {
    let (replies, cbs) = send(
        r,
        node,
        conn,
        inv + 1000,
        Request::LockAsync {
            handle,
            mode: mode.code(),
            flags: 0,
            waiter_signal: inv,
            invocation: inv,
        },
    );
    match replies.into_iter().find(|(id, _)| *id == inv + 1000) {
        Some((_, Reply::Service(Response::LockId { lock_id }))) => (lock_id, cbs),
        other => panic!("lock async: {other:?}"),
    }
}

fn grant(invocation: u64, lock_id: u64, status: LockStatus) -> Callback {
    Callback::Grant {
        invocation,
        lock_id,
        status,
        error: Ok(()),
    }
}

fn connect(r: &mut TestRing, node: u32, conn: u64) {
    r.node(node).connect(conn, 100 + conn as u32, ID);
}

fn granted_modes(list: &Reply<Response>, name: &str) -> Vec<(Mode, bool)> {
    let Reply::Service(Response::List { resources, .. }) = list else {
        panic!("{list:?}")
    };
    resources
        .iter()
        .find(|r| r.name == name.as_bytes())
        .map(|r| r.locks.iter().map(|l| (l.mode, l.granted)).collect())
        .unwrap_or_default()
}

#[test]
fn open_and_close_answer_their_specified_errors() {
    let mut r = ring_of(2);
    connect(&mut r, 1, 1);
    connect(&mut r, 2, 1);
    let o = |name: &str, flags| Request::Open {
        name: b(name),
        flags,
    };
    assert_eq!(
        call(&mut r, 1, 1, o("", RESOURCE_CREATE)),
        err(AisError::InvalidParam)
    );
    let long = "x".repeat(MAX_NAME + 1);
    assert_eq!(
        call(&mut r, 1, 1, o(&long, RESOURCE_CREATE)),
        err(AisError::InvalidParam)
    );
    assert_eq!(call(&mut r, 1, 1, o("r", 0x2)), err(AisError::BadFlags));
    assert_eq!(call(&mut r, 1, 1, o("r", 0)), err(AisError::NotExist));
    let h = open(&mut r, 1, 1, "r");
    // Node 2 sees it: opens without CREATE.
    assert!(matches!(
        call(&mut r, 2, 1, o("r", 0)),
        Reply::Service(Response::Opened { .. })
    ));
    // Another connection cannot close it; a second close is BAD_HANDLE.
    connect(&mut r, 1, 2);
    assert_eq!(
        call(&mut r, 1, 2, Request::Close { handle: h }),
        err(AisError::BadHandle)
    );
    assert_eq!(call(&mut r, 1, 1, Request::Close { handle: h }), Reply::Ok);
    assert_eq!(
        call(&mut r, 1, 1, Request::Close { handle: h }),
        err(AisError::BadHandle)
    );
    assert_eq!(
        call(&mut r, 1, 1, Request::Close { handle: 999 }),
        err(AisError::BadHandle)
    );
    // Asynchronous open: OK now, the handle in the callback.
    let (replies, cbs) = send(
        &mut r,
        1,
        1,
        5,
        Request::OpenAsync {
            name: b("r2"),
            flags: RESOURCE_CREATE,
            invocation: 9,
        },
    );
    assert_eq!(replies, vec![(5, Reply::Ok)]);
    assert!(matches!(
        cbs[..],
        [Callback::Open {
            invocation: 9,
            result: Ok(_)
        }]
    ));
    let (_, cbs) = send(
        &mut r,
        1,
        1,
        6,
        Request::OpenAsync {
            name: b("nope"),
            flags: 0,
            invocation: 10,
        },
    );
    assert_eq!(
        cbs,
        vec![Callback::Open {
            invocation: 10,
            result: Err(AisError::NotExist)
        }]
    );
    assert_eq!(
        call(&mut r, 1, 1, Request::OptionCheck),
        Reply::Service(Response::Options(OPT_ORPHAN_LOCKS | OPT_DEADLOCK_DETECTION))
    );
}

#[test]
fn lock_calls_answer_their_specified_errors() {
    let mut r = ring_of(1);
    connect(&mut r, 1, 1);
    let h = open(&mut r, 1, 1, "r");
    let l = |mode: u8, flags| Request::Lock {
        handle: h,
        mode,
        flags,
        waiter_signal: 0,
        timeout: TIME_END,
    };
    assert_eq!(call(&mut r, 1, 1, l(0, 0)), err(AisError::InvalidParam));
    assert_eq!(call(&mut r, 1, 1, l(3, 0)), err(AisError::InvalidParam));
    assert_eq!(call(&mut r, 1, 1, l(1, 0x4)), err(AisError::InvalidParam));
    let bad = Request::Lock {
        handle: 77,
        mode: 1,
        flags: 0,
        waiter_signal: 0,
        timeout: TIME_END,
    };
    assert_eq!(call(&mut r, 1, 1, bad), err(AisError::BadHandle));
    // Another connection's handle.
    connect(&mut r, 1, 2);
    assert_eq!(call(&mut r, 1, 2, l(1, 0)), err(AisError::BadHandle));
    let (ex, s) = lock(&mut r, 1, 1, h, Mode::Ex, 0);
    assert_eq!(s, LockStatus::Granted);
    // EX again by the same handle: DUPLICATE_EX.
    assert_eq!(
        lock(&mut r, 1, 1, h, Mode::Ex, 0).1,
        LockStatus::DuplicateEx
    );
    // Unlock: unknown id, another connection's lock, then fine, then gone.
    assert_eq!(
        call(&mut r, 1, 1, Request::Unlock { lock_id: 999 }),
        err(AisError::NotExist)
    );
    assert_eq!(
        call(&mut r, 1, 2, Request::Unlock { lock_id: ex }),
        err(AisError::NotExist)
    );
    assert_eq!(
        call(&mut r, 1, 1, Request::Unlock { lock_id: ex }),
        Reply::Ok
    );
    assert_eq!(
        call(&mut r, 1, 1, Request::Unlock { lock_id: ex }),
        err(AisError::NotExist)
    );
    // Asynchronous unlock: OK now, the outcome in the callback.
    let (pr, _) = lock(&mut r, 1, 1, h, Mode::Pr, 0);
    let (replies, cbs) = send(
        &mut r,
        1,
        1,
        3,
        Request::UnlockAsync {
            lock_id: pr,
            invocation: 8,
        },
    );
    assert_eq!(replies, vec![(3, Reply::Ok)]);
    assert_eq!(
        cbs,
        vec![Callback::Unlock {
            invocation: 8,
            result: Ok(())
        }]
    );
    assert_eq!(
        call(&mut r, 1, 1, Request::Purge { handle: 77 }),
        err(AisError::BadHandle)
    );
    assert_eq!(call(&mut r, 1, 1, Request::Purge { handle: h }), Reply::Ok);
}

#[test]
fn shared_locks_share_and_exclusive_waits_in_fifo_order_with_waiter_callbacks() {
    let mut r = ring_of(3);
    for n in 1..=3 {
        connect(&mut r, n, 1);
    }
    let h1 = open(&mut r, 1, 1, "r");
    let h2 = open(&mut r, 2, 1, "r");
    let h3 = open(&mut r, 3, 1, "r");
    let (p1, s) = lock(&mut r, 1, 1, h1, Mode::Pr, 0);
    assert_eq!(s, LockStatus::Granted);
    // Node 2's EX waits; node 1's holder gets a waiter callback with node 2's signal.
    let (e2, cbs) = lock_async(&mut r, 2, 1, h2, Mode::Ex, 5);
    assert!(cbs.is_empty());
    let (_, cbs1) = collect(&mut r, 1, 1);
    assert_eq!(
        cbs1,
        vec![Callback::Waiter {
            waiter_signal: 5,
            lock_id: p1,
            mode_held: Mode::Pr,
            mode_requested: Mode::Ex
        }]
    );
    // A PR after the waiting EX queues behind it (no writer starvation).
    let (p3, cbs) = lock_async(&mut r, 3, 1, h3, Mode::Pr, 6);
    assert!(cbs.is_empty());
    let list = call(&mut r, 1, 1, Request::List);
    assert_eq!(
        granted_modes(&list, "r"),
        vec![(Mode::Pr, true), (Mode::Ex, false), (Mode::Pr, false)]
    );
    // NO_QUEUE: not queued.
    assert_eq!(
        lock(&mut r, 1, 1, h1, Mode::Pr, LOCK_NO_QUEUE).1,
        LockStatus::NotQueued
    );
    // The PR goes: the EX is granted (node 2's callback), then the EX goes: the PR.
    assert_eq!(
        call(&mut r, 1, 1, Request::Unlock { lock_id: p1 }),
        Reply::Ok
    );
    let (_, cbs2) = collect(&mut r, 2, 1);
    assert_eq!(cbs2, vec![grant(5, e2, LockStatus::Granted)]);
    assert_eq!(
        call(&mut r, 2, 1, Request::Unlock { lock_id: e2 }),
        Reply::Ok
    );
    let (_, cbs3) = collect(&mut r, 3, 1);
    assert_eq!(cbs3, vec![grant(6, p3, LockStatus::Granted)]);
}

#[test]
fn a_request_closing_a_cycle_is_answered_deadlock() {
    let mut r = ring_of(2);
    connect(&mut r, 1, 1);
    connect(&mut r, 2, 1);
    let a = open(&mut r, 1, 1, "r");
    let b_ = open(&mut r, 2, 1, "r");
    assert_eq!(lock(&mut r, 1, 1, a, Mode::Pr, 0).1, LockStatus::Granted);
    // Node 2's EX waits for node 1's PR.
    let (e2, _) = lock_async(&mut r, 2, 1, b_, Mode::Ex, 1);
    // Node 1 asking PR again would queue behind that EX (FIFO): it would wait for node 2,
    // which waits for it.
    assert_eq!(lock(&mut r, 1, 1, a, Mode::Pr, 0).1, LockStatus::Deadlock);
    // Not queued: the table holds node 2's request only.
    let list = call(&mut r, 1, 1, Request::List);
    assert_eq!(
        granted_modes(&list, "r"),
        vec![(Mode::Pr, true), (Mode::Ex, false)]
    );
    let (_, cbs) = collect(&mut r, 2, 1);
    assert!(cbs.is_empty(), "{e2}: {cbs:?}");
    let _ = e2;
    // A self-conversion on one handle (PR held, EX asked) is a cycle of one.
    let mut r = ring_of(1);
    connect(&mut r, 1, 1);
    let h = open(&mut r, 1, 1, "s");
    assert_eq!(lock(&mut r, 1, 1, h, Mode::Pr, 0).1, LockStatus::Granted);
    assert_eq!(lock(&mut r, 1, 1, h, Mode::Ex, 0).1, LockStatus::Deadlock);
    // Two handles of one process are two holders: the second only waits.
    let h2 = open(&mut r, 1, 1, "s");
    let (_, cbs) = lock_async(&mut r, 1, 1, h2, Mode::Ex, 3);
    assert!(cbs.iter().all(|c| !matches!(c, Callback::Grant { .. })));
}

#[test]
fn a_timed_out_request_is_withdrawn_unless_granted_first() {
    let mut r = ring_of(2);
    connect(&mut r, 1, 1);
    connect(&mut r, 2, 1);
    let h1 = open(&mut r, 1, 1, "r");
    let h2 = open(&mut r, 2, 1, "r");
    let (ex, _) = lock(&mut r, 1, 1, h1, Mode::Ex, 0);
    // Node 2 waits 1 s.
    r.node(2).core.tick(10 * SEC);
    r.node(2)
        .core
        .request_value(1, 50, &lock_req(h2, Mode::Ex, 0, SEC));
    r.flush();
    assert!(collect(&mut r, 2, 1).0.is_empty());
    r.node(2).core.tick(10 * SEC + SEC / 2);
    r.flush();
    assert!(collect(&mut r, 2, 1).0.is_empty());
    r.node(2).core.tick(11 * SEC);
    r.flush();
    assert_eq!(collect(&mut r, 2, 1).0, vec![(50, err(AisError::Timeout))]);
    let list = call(&mut r, 1, 1, Request::List);
    assert_eq!(granted_modes(&list, "r"), vec![(Mode::Ex, true)]);
    // The grant wins over a withdrawal delivered after it.
    r.node(2)
        .core
        .request_value(1, 51, &lock_req(h2, Mode::Ex, 0, SEC));
    r.flush();
    r.node(1)
        .core
        .request_value(1, 52, &Request::Unlock { lock_id: ex });
    r.node(2).core.tick(12 * SEC);
    r.flush();
    let got = collect(&mut r, 2, 1).0;
    assert!(
        matches!(
            got[..],
            [(
                51,
                Reply::Service(Response::Locked {
                    status: LockStatus::Granted,
                    ..
                })
            )]
        ),
        "{got:?}"
    );
}

#[test]
fn orphan_locks_outlive_their_holder_until_purged() {
    let mut r = ring_of(2);
    connect(&mut r, 1, 1);
    connect(&mut r, 2, 1);
    let h1 = open(&mut r, 1, 1, "r");
    let h2 = open(&mut r, 2, 1, "r");
    assert_eq!(
        lock(&mut r, 1, 1, h1, Mode::Ex, LOCK_ORPHAN).1,
        LockStatus::Granted
    );
    // Its process dies: the lock stays, as an orphan.
    r.node(1).core.disconnected(1);
    r.flush();
    let list = call(&mut r, 2, 1, Request::List);
    let Reply::Service(Response::List { resources, .. }) = &list else {
        panic!()
    };
    assert_eq!(resources[0].opens, 1);
    assert_eq!(resources[0].locks[0].holder, None);
    // Another request meets the orphan: ORPHANED, not queued.
    assert_eq!(lock(&mut r, 2, 1, h2, Mode::Pr, 0).1, LockStatus::Orphaned);
    assert_eq!(call(&mut r, 2, 1, Request::Purge { handle: h2 }), Reply::Ok);
    assert_eq!(lock(&mut r, 2, 1, h2, Mode::Pr, 0).1, LockStatus::Granted);
}

#[test]
fn a_closed_handle_or_departed_node_releases_its_locks_and_the_queue_moves() {
    let mut r = ring_of(3);
    for n in 1..=3 {
        connect(&mut r, n, 1);
    }
    let h1 = open(&mut r, 1, 1, "r");
    let h2 = open(&mut r, 2, 1, "r");
    let h3 = open(&mut r, 3, 1, "r");
    assert_eq!(lock(&mut r, 3, 1, h3, Mode::Ex, 0).1, LockStatus::Granted);
    let (e1, _) = lock_async(&mut r, 1, 1, h1, Mode::Ex, 1);
    let (e2, _) = lock_async(&mut r, 2, 1, h2, Mode::Ex, 2);
    // Node 3 departs: at the sync its EX goes and node 1's request (first queued) is granted.
    r.config(&[1, 2], &[1, 2]);
    r.flush();
    let (_, cbs) = collect(&mut r, 1, 1);
    assert_eq!(cbs, vec![grant(1, e1, LockStatus::Granted)]);
    // Node 1's handle closes: node 2's turn.
    assert_eq!(call(&mut r, 1, 1, Request::Close { handle: h1 }), Reply::Ok);
    let (_, cbs) = collect(&mut r, 2, 1);
    assert_eq!(cbs, vec![grant(2, e2, LockStatus::Granted)]);
    // Node 2's process dies while a request of it waits on another resource: both released.
    let hs = open(&mut r, 1, 1, "s");
    assert_eq!(lock(&mut r, 1, 1, hs, Mode::Ex, 0).1, LockStatus::Granted);
    let hs2 = open(&mut r, 2, 1, "s");
    let _ = lock_async(&mut r, 2, 1, hs2, Mode::Pr, 3);
    r.node(2).core.disconnected(1);
    r.flush();
    let list = call(&mut r, 1, 1, Request::List);
    assert_eq!(granted_modes(&list, "r"), vec![]);
    assert_eq!(granted_modes(&list, "s"), vec![(Mode::Ex, true)]);
}

fn quorum_ring(n: u32) -> TestRing {
    let mut r = TestRing::new(n, move || {
        vec![
            Box::new(Quorum::new(QuorumConfig {
                votes: 1,
                expected_votes: n,
                two_node: false,
                wait_for_all: false,
            })) as Box<dyn Service + Send>,
            Box::new(Lck::new(LckConfig::default())),
        ]
    });
    r.flush();
    r
}

#[test]
fn without_quorum_nothing_is_granted_and_the_quorate_side_wins_the_merge() {
    let mut r = quorum_ring(3);
    for n in 1..=3 {
        connect(&mut r, n, 1);
    }
    let h1 = open(&mut r, 1, 1, "r");
    let h3 = open(&mut r, 3, 1, "r");
    assert_eq!(lock(&mut r, 3, 1, h3, Mode::Ex, 0).1, LockStatus::Granted);
    // Partition: {1, 2} (quorate) and {3} (not).
    r.config(&[3], &[3]);
    r.flush();
    // The minority grants nothing: a new request is TRY_AGAIN.
    let h3b = open(&mut r, 3, 1, "r");
    assert_eq!(
        call(&mut r, 3, 1, lock_req(h3b, Mode::Pr, 0, TIME_END)),
        err(AisError::TryAgain)
    );
    r.config(&[1, 2], &[1, 2]);
    r.flush();
    // The majority released node 3's EX: node 1 gets it.
    let (e1, s) = lock(&mut r, 1, 1, h1, Mode::Ex, 0);
    assert_eq!(s, LockStatus::Granted);
    // Heal: the quorate side's table wins; node 3's EX is gone, node 1 keeps its own.
    r.config(&[1, 2, 3], &[1, 2, 3]);
    r.flush();
    for n in 1..=3 {
        let list = call(&mut r, n, 1, Request::List);
        assert_eq!(
            granted_modes(&list, "r"),
            vec![(Mode::Ex, true)],
            "node {n}"
        );
        let Reply::Service(Response::List { resources, .. }) = &list else {
            panic!()
        };
        assert_eq!(resources[0].locks[0].id.node, 1);
        assert_eq!(resources[0].locks[0].id.n, e1);
        // Every handle is still open.
        assert_eq!(resources[0].opens, 3);
    }
    // Node 3's client's unlock of its lost lock: NOT_EXIST.
    let lost = 1;
    assert_eq!(
        call(&mut r, 3, 1, Request::Unlock { lock_id: lost }),
        err(AisError::NotExist)
    );
}

/// The granted locks of `name` in a listing: (id, holder present).
fn granted_ids(list: &Reply<Response>, name: &str) -> Vec<(LockId, bool)> {
    let Reply::Service(Response::List { resources, .. }) = list else {
        panic!("{list:?}")
    };
    resources
        .iter()
        .filter(|r| r.name == b(name))
        .flat_map(|r| r.locks.iter())
        .filter(|l| l.granted)
        .map(|l| (l.id, l.holder.is_some()))
        .collect()
}

#[test]
fn an_operator_releases_a_held_or_orphan_lock_and_the_queue_moves() {
    let mut r = ring_of(3);
    for n in 1..=3 {
        connect(&mut r, n, 1);
    }
    let h1 = open(&mut r, 1, 1, "r");
    let h2 = open(&mut r, 2, 1, "r");
    let (l1, s) = lock(&mut r, 1, 1, h1, Mode::Ex, 0);
    assert_eq!(s, LockStatus::Granted);
    let (q2, _) = lock_async(&mut r, 2, 1, h2, Mode::Ex, 5);
    let list = call(&mut r, 3, 1, Request::List);
    let held = granted_ids(&list, "r");
    assert_eq!(held.len(), 1);
    let (id1, _) = held[0];
    assert_eq!((id1.node, id1.n), (1, l1));
    // Node 3's operator names the wrong resource, then a queued request: refused.
    let release = |name: &str, lock: LockId| Request::Release {
        name: b(name),
        lock,
    };
    assert_eq!(
        call(&mut r, 3, 1, release("s", id1)),
        err(AisError::NotExist)
    );
    let Reply::Service(Response::List { resources, .. }) = call(&mut r, 3, 1, Request::List) else {
        panic!()
    };
    let queued_id = resources[0].locks.iter().find(|l| !l.granted).unwrap().id;
    assert_eq!(
        call(&mut r, 3, 1, release("r", queued_id)),
        err(AisError::BadOperation)
    );
    // Node 1's EX released by node 3's operator: node 2's queued EX is granted.
    assert_eq!(call(&mut r, 3, 1, release("r", id1)), Reply::Ok);
    let (_, cbs) = collect(&mut r, 2, 1);
    assert_eq!(cbs, vec![grant(5, q2, LockStatus::Granted)]);
    for n in 1..=3 {
        let list = call(&mut r, n, 1, Request::List);
        assert_eq!(granted_ids(&list, "r"), vec![(queued_id, true)], "node {n}");
    }
    // The released holder's own unlock: NOT_EXIST; releasing it again: NOT_EXIST.
    assert_eq!(
        call(&mut r, 1, 1, Request::Unlock { lock_id: l1 }),
        err(AisError::NotExist)
    );
    assert_eq!(
        call(&mut r, 3, 1, release("r", id1)),
        err(AisError::NotExist)
    );
    // An orphan: node 2's lock orphaned by its process's death, released by an operator.
    assert_eq!(
        call(&mut r, 2, 1, Request::Unlock { lock_id: q2 }),
        Reply::Ok
    );
    let (_, s) = lock(&mut r, 2, 1, h2, Mode::Ex, LOCK_ORPHAN);
    assert_eq!(s, LockStatus::Granted);
    r.node(2).core.disconnected(1);
    r.flush();
    let orphan = granted_ids(&call(&mut r, 1, 1, Request::List), "r");
    assert_eq!(orphan.len(), 1);
    assert!(!orphan[0].1, "an orphan has no holder");
    assert_eq!(call(&mut r, 1, 1, release("r", orphan[0].0)), Reply::Ok);
    let h1b = open(&mut r, 1, 1, "r");
    assert_eq!(lock(&mut r, 1, 1, h1b, Mode::Ex, 0).1, LockStatus::Granted);
}

#[test]
fn an_operator_release_without_quorum_is_try_again() {
    let mut r = quorum_ring(3);
    for n in 1..=3 {
        connect(&mut r, n, 1);
    }
    let h3 = open(&mut r, 3, 1, "r");
    assert_eq!(lock(&mut r, 3, 1, h3, Mode::Ex, 0).1, LockStatus::Granted);
    let id = granted_ids(&call(&mut r, 3, 1, Request::List), "r")[0].0;
    r.config(&[3], &[3]);
    r.flush();
    assert_eq!(
        call(
            &mut r,
            3,
            1,
            Request::Release {
                name: b("r"),
                lock: id,
            }
        ),
        err(AisError::TryAgain)
    );
    assert_eq!(
        granted_ids(&call(&mut r, 3, 1, Request::List), "r").len(),
        1
    );
}

#[test]
fn the_limits_refuse_with_their_specified_errors() {
    let mut r = ring_with(
        1,
        LckConfig {
            max_resources: 1,
            max_locks: 2,
        },
    );
    connect(&mut r, 1, 1);
    let h = open(&mut r, 1, 1, "r");
    assert_eq!(
        call(
            &mut r,
            1,
            1,
            Request::Open {
                name: b("s"),
                flags: RESOURCE_CREATE
            }
        ),
        err(AisError::NoResources)
    );
    let h2 = open(&mut r, 1, 1, "r");
    let h3 = open(&mut r, 1, 1, "r");
    assert_eq!(lock(&mut r, 1, 1, h, Mode::Pr, 0).1, LockStatus::Granted);
    assert_eq!(lock(&mut r, 1, 1, h2, Mode::Pr, 0).1, LockStatus::Granted);
    assert_eq!(lock(&mut r, 1, 1, h3, Mode::Pr, 0).1, LockStatus::NoMore);
}

#[test]
fn malformed_and_foreign_ring_messages_change_nothing_and_are_counted() {
    let mut r = ring_of(2);
    connect(&mut r, 1, 1);
    connect(&mut r, 2, 1);
    let h = open(&mut r, 1, 1, "r");
    let (ex, _) = lock(&mut r, 1, 1, h, Mode::Ex, 0);
    let before = call(&mut r, 2, 1, Request::List);
    // Bytes that do not decode.
    r.inject(2, ring::raw(ID, 1, &[1, 2, 3]));
    r.inject(2, ring::raw(ID, 99, &[]));
    // Node 2 unlocking node 1's lock, closing node 1's holder.
    let ring = r.node(2).core.ring();
    let foreign = |update| {
        ring::encode(
            ID,
            &RingMessage::Update {
                rep: ring.rep.0,
                seq: ring.seq,
                max_resources: 10,
                max_locks: 10,
                update,
            },
        )
    };
    let epoch = ring.seq.max(1);
    let lock = LockId {
        node: 1,
        epoch,
        n: ex,
    };
    r.inject(2, foreign(Update::Unlock { lock }));
    let holder = Holder {
        node: 1,
        epoch,
        handle: h,
    };
    r.inject(2, foreign(Update::Close { holder }));
    assert_eq!(call(&mut r, 2, 1, Request::List), before);
    assert_eq!(call(&mut r, 1, 1, Request::List), before);
    for n in 1..=2 {
        assert_eq!(r.node(n).core.core_counters().exec_malformed, 2);
        let stats = stats_of(&mut r, n);
        assert!(
            stats.contains(&("lck_updates_foreign".to_string(), 2)),
            "node {n}: {stats:?}"
        );
    }
}

/// A node's counters and gauges, by name.
fn stats_of(r: &mut TestRing, node: u32) -> Vec<(String, u64)> {
    struct V<'a>(&'a mut Vec<(String, u64)>);
    impl Visitor for V<'_> {
        fn counter(&mut self, name: &'static str, value: u64) {
            self.0.push((name.to_string(), value));
        }
        fn gauge(&mut self, name: &'static str, value: u64) {
            self.0.push((name.to_string(), value));
        }
    }
    let mut stats = Vec::new();
    dataplane::stats::Visit::visit(&r.node(node).core, &mut V(&mut stats));
    stats
}

#[test]
fn malformed_requests_close_the_connection() {
    let mut r = ring_of(1);
    connect(&mut r, 1, 1);
    r.node(1).core.request(1, 5, 80, Bytes::from_static(&[1]));
    let e = r.node(1).take();
    assert!(
        e.iter()
            .any(|e| matches!(e, crate::exec::Effect::Disconnect { conn: 1 }))
    );
    assert_eq!(r.node(1).core.core_counters().ipc_malformed, 1);
}

#[test]
fn a_lock_request_overtaken_by_a_configuration_change_is_sent_again_not_refused() {
    let mut r = ring_of(2);
    connect(&mut r, 1, 1);
    connect(&mut r, 2, 1);
    let h1 = open(&mut r, 1, 1, "r");
    let h2 = open(&mut r, 2, 1, "r");
    assert_eq!(lock(&mut r, 1, 1, h1, Mode::Ex, 0).1, LockStatus::Granted);
    // Node 2's request is submitted in the two-node ring, and node 1 fails before Totem
    // sends it: it is ordered in node 2's new ring, stamped with the old one.
    r.node(2).core.request_value(
        1,
        1007,
        &Request::LockAsync {
            handle: h2,
            mode: Mode::Ex.code(),
            flags: 0,
            waiter_signal: 7,
            invocation: 7,
        },
    );
    r.node(2).run();
    assert_eq!(r.node(2).pending(), 1, "the request waits for the ring");
    r.config(&[2], &[2]);
    r.flush();
    let (replies, cbs) = collect(&mut r, 2, 1);
    let Some((_, Reply::Service(Response::LockId { lock_id }))) =
        replies.into_iter().find(|(id, _)| *id == 1007)
    else {
        panic!("no lock id")
    };
    // Refused as stale at first, sent again once node 2 synchronised, and granted (node
    // 1's lock went with it).
    assert_eq!(cbs, vec![grant(7, lock_id, LockStatus::Granted)]);
    let list = call(&mut r, 2, 1, Request::List);
    assert_eq!(granted_modes(&list, "r"), vec![(Mode::Ex, true)]);
    assert!(stats_of(&mut r, 2).contains(&("lck_locks_resent".to_string(), 1)));
}
