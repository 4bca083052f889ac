//! EVT through the client library, against real executives: an event published on one node
//! reaches the matching subscriptions on the other, not the others; the specification's
//! refusals of each call (`NOT_EXIST`, `BAD_FLAGS`, `NAME_TOO_LONG`, `ACCESS`, `EXIST`,
//! `BAD_HANDLE`, `INVALID_PARAM`); retained events reach later subscribers until cleared;
//! the asynchronous open answers through dispatch; unlink frees the name; a subscriber that
//! does not read is sent a lost-event notification instead of being disconnected; and a
//! retained event survives the kill -9 of its publisher's executive.
//!
//! Assumes: loopback only, no root, free UDP ports from the kernel, a loaded 2-core machine
//! (every wait is generous). The processes are killed when a test ends, whatever happens.

mod common;

use std::time::{Duration, Instant};

use ais_client::evt::{
    EVENT_ID_LOST, Event, Evt, EvtEvent, Filter, FilterType, MAX_NAME, OPEN_CREATE, OPEN_PUBLISHER,
    OPEN_SUBSCRIBER,
};
use ais_client::{AisError, Error};
use bytes::Bytes;
use common::cluster::Cluster;

const LONG: Duration = Duration::from_secs(20);
const ALL: u8 = OPEN_CREATE | OPEN_PUBLISHER | OPEN_SUBSCRIBER;

/// Two nodes on loopback, both members.
fn pair(name: &str) -> Cluster {
    let mut c = Cluster::loopback(name, 2, "");
    c.start_all();
    for i in 0..2 {
        c.wait_ring(i, &[1, 2], LONG);
    }
    c
}

/// An EVT client of node `i` (retrying the connect while the executive starts).
fn evt(c: &Cluster, i: usize) -> Evt {
    let deadline = Instant::now() + LONG;
    loop {
        match Evt::connect(&c.node(i).socket) {
            Ok(e) => return e,
            Err(e) if Instant::now() > deadline => panic!("connect to node {}: {e}", i + 1),
            Err(_) => std::thread::sleep(Duration::from_millis(20)),
        }
    }
}

/// Runs `op` again while it answers TRY_AGAIN (a membership change settling).
fn again<T>(op: impl FnMut() -> Result<T, Error>) -> Result<T, Error> {
    common::ckpt::again(LONG, op)
}

fn ais<T: std::fmt::Debug>(r: Result<T, Error>) -> AisError {
    r.expect_err("refused")
        .ais_error()
        .expect("an SA Forum error")
}

fn event(patterns: &[&[u8]], priority: u8, retention: u64, data: &[u8]) -> Event {
    let mut e = Event::new();
    e.set_attributes(patterns, priority, retention, b"evt-test")
        .expect("attributes");
    e.set_data(data);
    e
}

fn prefix(p: &str) -> Vec<Filter> {
    vec![Filter {
        kind: FilterType::Prefix.code(),
        pattern: Bytes::copy_from_slice(p.as_bytes()),
    }]
}

/// Deliveries until none comes for `quiet`: (subscription, id, data).
fn drain(e: &mut Evt, quiet: Duration) -> Vec<(u32, u64, Bytes)> {
    let mut got = Vec::new();
    while let Some(ev) = e.dispatch(Some(quiet)).expect("dispatch") {
        if let EvtEvent::Deliver(d) = ev {
            got.push((d.subscription, d.header.id, d.data));
        }
    }
    got
}

#[test]
fn events_reach_matching_subscribers_and_every_call_refuses_as_specified() {
    let c = pair("evt-pair");
    let mut e1 = evt(&c, 0);
    let mut e2 = evt(&c, 1);
    // Open's refusals.
    assert_eq!(
        ais(again(|| e1.open(b"ch", OPEN_PUBLISHER))),
        AisError::NotExist
    );
    assert_eq!(ais(again(|| e1.open(b"ch", 0x40))), AisError::BadFlags);
    assert_eq!(
        ais(e1.open(&vec![b'n'; MAX_NAME + 1], ALL)),
        AisError::NameTooLong
    );
    let h1 = again(|| e1.open(b"ch", ALL)).expect("create");
    let h2 = again(|| e2.open(b"ch", OPEN_SUBSCRIBER)).expect("open at node 2");
    let p2 = again(|| e2.open(b"ch", OPEN_PUBLISHER)).expect("open to publish");
    // Subscribe's.
    e2.subscribe(h2, 1, prefix("a")).expect("subscribe");
    assert_eq!(ais(e2.subscribe(h2, 1, prefix("b"))), AisError::Exist);
    assert_eq!(ais(e2.subscribe(p2, 2, prefix("b"))), AisError::Access);
    let bad = vec![Filter {
        kind: 9,
        pattern: Bytes::new(),
    }];
    assert_eq!(ais(e2.subscribe(h2, 3, bad)), AisError::InvalidParam);
    assert_eq!(ais(e2.unsubscribe(h2, 7)), AisError::NotExist);
    // Publish's.
    assert_eq!(
        ais(e2.publish(h2, &event(&[b"a"], 1, 0, b"x"))),
        AisError::Access
    );
    let a = again(|| e1.publish(h1, &event(&[b"a1"], 1, 0, b"alpha"))).expect("publish");
    let b = again(|| e1.publish(h1, &event(&[b"b1"], 1, 0, b"beta"))).expect("publish");
    assert_eq!(a >> 32, 1, "node 1's id is in the event id");
    assert!(b > a);
    assert_eq!(
        drain(&mut e2, Duration::from_secs(1)),
        [(1, a, Bytes::from_static(b"alpha"))],
        "the prefix filter passes a1 only"
    );
    // Retention: a later subscriber gets the retained event; after a clear, one does not.
    let r = again(|| e1.publish(h1, &event(&[b"a2"], 0, 60_000_000_000, b"kept"))).expect("r");
    drain(&mut e2, Duration::from_millis(500));
    e2.subscribe(h2, 4, prefix("a2")).expect("subscribe");
    assert_eq!(
        drain(&mut e2, Duration::from_millis(500)),
        [(4, r, Bytes::from_static(b"kept"))]
    );
    assert_eq!(
        ais(e1.retention_time_clear(h1, EVENT_ID_LOST)),
        AisError::InvalidParam
    );
    assert_eq!(
        ais(e1.retention_time_clear(h1, r + 1000)),
        AisError::NotExist
    );
    again(|| e1.retention_time_clear(h1, r)).expect("clear");
    e2.subscribe(h2, 5, prefix("a2")).expect("subscribe");
    assert_eq!(drain(&mut e2, Duration::from_millis(500)), []);
    // The asynchronous open.
    e2.open_async(b"ch", OPEN_SUBSCRIBER, 42)
        .expect("open async");
    match e2.dispatch(Some(LONG)).expect("dispatch") {
        Some(EvtEvent::ChannelOpen {
            invocation: 42,
            result: Ok(_),
        }) => {}
        other => panic!("{other:?}"),
    }
    // Close and unlink.
    e2.close(p2).expect("close");
    assert_eq!(ais(e2.close(p2)), AisError::BadHandle);
    again(|| e2.unlink(b"ch")).expect("unlink");
    assert_eq!(ais(again(|| e2.unlink(b"ch"))), AisError::NotExist);
    assert_eq!(
        ais(again(|| e2.open(b"ch", OPEN_SUBSCRIBER))),
        AisError::NotExist
    );
    // The opens of the unlinked channel still work.
    let after = again(|| e1.publish(h1, &event(&[b"a3"], 2, 0, b"late"))).expect("publish");
    assert_eq!(
        drain(&mut e2, Duration::from_secs(1)),
        [(1, after, Bytes::from_static(b"late"))]
    );
    let names: Vec<_> = e1.channels().expect("list").into_iter().collect();
    assert!(names.iter().all(|ch| ch.unlinked), "{names:?}");
}

#[test]
fn a_subscriber_that_does_not_read_is_told_of_lost_events_and_retention_outlives_a_publisher() {
    let mut c = pair("evt-lost");
    let mut e1 = evt(&c, 0);
    let mut slow = evt(&c, 1);
    let h1 = again(|| e1.open(b"burst", ALL)).expect("create");
    let hs = again(|| slow.open(b"burst", OPEN_SUBSCRIBER)).expect("open");
    slow.subscribe(hs, 1, Vec::new()).expect("subscribe");
    // More than the window (256) and the queue (1000) together, without reading.
    let n = 1600;
    for i in 0..n {
        let e = event(&[b"x"], 3, 0, format!("{i}").as_bytes());
        again(|| e1.publish(h1, &e)).expect("publish");
    }
    let retained = again(|| e1.publish(h1, &event(&[b"keep"], 0, 3_600_000_000_000, b"r")))
        .expect("publish retained");
    std::thread::sleep(Duration::from_secs(1));
    let mut events = 0;
    let mut lost = 0;
    while let Some(ev) = slow
        .dispatch(Some(Duration::from_secs(2)))
        .expect("dispatch")
    {
        if let EvtEvent::Deliver(d) = ev {
            if d.is_lost() {
                lost += 1;
            } else {
                events += 1;
            }
        }
    }
    assert!(lost >= 1, "no lost-event notification ({events} events)");
    assert!(
        events < n + 1,
        "{events} events delivered of {n}: nothing was lost?"
    );
    // The connection was not dropped: it still works.
    slow.subscribe(hs, 2, prefix("keep"))
        .expect("still connected");
    assert_eq!(
        drain(&mut slow, Duration::from_millis(500))
            .iter()
            .map(|d| d.1)
            .collect::<Vec<_>>(),
        [retained]
    );
    // kill -9 of the publisher's executive: its retained event lives on at node 2.
    c.kill(0);
    c.wait_ring(1, &[2], LONG);
    let mut late = evt(&c, 1);
    let hl = again(|| late.open(b"burst", OPEN_SUBSCRIBER)).expect("open after the kill");
    again(|| late.subscribe(hl, 1, prefix("keep"))).expect("subscribe");
    assert_eq!(
        drain(&mut late, Duration::from_secs(1))
            .iter()
            .map(|d| d.1)
            .collect::<Vec<_>>(),
        [retained]
    );
}

/// Runs `aisctl --socket <node i> args`: (exit status, standard output, standard error).
fn aisctl(c: &Cluster, i: usize, args: &[&str]) -> (i32, String, String) {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_aisctl"))
        .arg("--socket")
        .arg(&c.node(i).socket)
        .args(args)
        .output()
        .expect("run aisctl");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn aisctl_publishes_subscribes_and_lists() {
    let mut c = Cluster::loopback("evt-aisctl", 1, "");
    c.start_all();
    c.wait_ring(0, &[1], LONG);
    let _ = evt(&c, 0);
    let (code, out, err) = aisctl(
        &c,
        0,
        &[
            "evt",
            "publish",
            "alarms",
            "--pattern",
            "disk/sda",
            "--data",
            "full",
            "--retain-forever",
            "--priority",
            "1",
        ],
    );
    assert_eq!(code, 0, "{err}");
    let id = out.trim().to_owned();
    assert!(id.starts_with("0x1"), "{out}");
    // A later subscriber gets the retained event; a filter that does not match does not.
    let (code, out, err) = aisctl(
        &c,
        0,
        &[
            "evt",
            "subscribe",
            "alarms",
            "--filter",
            "prefix:disk/",
            "--count",
            "1",
        ],
    );
    assert_eq!(code, 0, "{err}");
    assert!(out.starts_with(&id), "{out}");
    assert!(out.contains("priority 1") && out.contains("full"), "{out}");
    let (code, out, err) = aisctl(
        &c,
        0,
        &[
            "evt",
            "subscribe",
            "alarms",
            "--filter",
            "exact:disk",
            "--idle",
            "1",
        ],
    );
    assert_eq!((code, out.as_str()), (0, ""), "{err}");
    let (code, out, err) = aisctl(&c, 0, &["evt", "ls"]);
    assert_eq!(code, 0, "{err}");
    let line = out.lines().find(|l| l.starts_with("alarms")).expect(&out);
    assert_eq!(
        line.split_whitespace().collect::<Vec<_>>(),
        ["alarms", "0", "1", "no"]
    );
    // A channel that does not exist, without --create: the error is said.
    let (code, _, err) = aisctl(&c, 0, &["evt", "subscribe", "nope", "--count", "1"]);
    assert_ne!(code, 0);
    assert!(err.contains("SA_AIS_ERR_NOT_EXIST"), "{err}");
}
