//! The MSG calls on a perfect in-memory ring: each call's success and its specified errors,
//! priorities and limits, waiting gets, queue life (close, retention, unlink, an opener that
//! goes away), and the merge after a partition.

use super::*;
use crate::exec::testkit::TestRing;
use ais_proto::msg::{MessageBody, OPEN_EMPTY, POLICY_LOCAL_ROUND_ROBIN};
use dataplane::stats::Visitor;

const MS: u64 = 1_000_000;

fn attrs(persistent: bool) -> Attributes {
    Attributes {
        creation_flags: if persistent { QUEUE_PERSISTENT } else { 0 },
        size: [100, 100, 100, 100],
        retention_time: 50 * MS,
    }
}

fn ring_with(n: u32, cfg: MsgConfig) -> TestRing {
    let mut r = TestRing::new(n, || {
        vec![Box::new(Msg::new(cfg)) as Box<dyn Service + Send>]
    });
    r.flush();
    for node in 1..=n {
        for conn in 1..=2 {
            r.node(node).connect(conn, 100, ID);
        }
    }
    r
}

fn ring_of(n: u32) -> TestRing {
    ring_with(n, MsgConfig::default())
}

fn b(s: &str) -> Bytes {
    Bytes::copy_from_slice(s.as_bytes())
}

fn call_cb(
    r: &mut TestRing,
    node: u32,
    conn: u64,
    req: Request,
) -> (Option<Reply<Response>>, Vec<Callback>) {
    r.node(node).core.request_value(conn, 77, &req);
    r.flush();
    let effects = r.node(node).take();
    let reply = effects
        .iter()
        .filter_map(|e| e.reply::<Response>())
        .find(|(c, id, _)| *c == conn && *id == 77)
        .map(|(_, _, r)| r);
    let cbs = effects
        .iter()
        .filter_map(|e| e.callback::<Callback>())
        .filter(|(c, _)| *c == conn)
        .map(|(_, cb)| cb)
        .collect();
    (reply, cbs)
}

fn call(r: &mut TestRing, node: u32, conn: u64, req: Request) -> Reply<Response> {
    let req2 = req.clone();
    call_cb(r, node, conn, req)
        .0
        .unwrap_or_else(|| panic!("no answer to {req2:?}"))
}

fn err(e: AisError) -> Reply<Response> {
    Reply::Error(e)
}

fn open_req(name: &str, flags: u8, a: Option<Attributes>) -> Request {
    Request::Open {
        name: b(name),
        flags,
        attributes: a,
    }
}

fn create(r: &mut TestRing, node: u32, conn: u64, name: &str, persistent: bool) -> u64 {
    match call(
        r,
        node,
        conn,
        open_req(name, OPEN_CREATE, Some(attrs(persistent))),
    ) {
        Reply::Service(Response::Opened { handle }) => handle,
        other => panic!("open {name}: {other:?}"),
    }
}

fn msg(p: u8, data: &str) -> MessageBody {
    MessageBody {
        msg_type: 1,
        version: 1,
        priority: p,
        sender_name: b("tester"),
        data: b(data),
    }
}

fn send(r: &mut TestRing, node: u32, to: &str, p: u8, data: &str) -> Reply<Response> {
    call(
        r,
        node,
        1,
        Request::Send {
            destination: b(to),
            message: msg(p, data),
        },
    )
}

fn get(
    r: &mut TestRing,
    node: u32,
    conn: u64,
    handle: u64,
    timeout: u64,
) -> Option<Reply<Response>> {
    call_cb(r, node, conn, Request::Get { handle, timeout }).0
}

fn data_of(reply: Option<Reply<Response>>) -> String {
    match reply {
        Some(Reply::Service(Response::Message { message, .. })) => {
            String::from_utf8(message.data.to_vec()).unwrap()
        }
        other => panic!("not a message: {other:?}"),
    }
}

fn status(r: &mut TestRing, node: u32, name: &str) -> Reply<Response> {
    call(r, node, 1, Request::StatusGet { name: b(name) })
}

fn is_open(r: &mut TestRing, node: u32, name: &str) -> bool {
    match status(r, node, name) {
        Reply::Service(Response::Status(s)) => s.open,
        other => panic!("status: {other:?}"),
    }
}

#[test]
fn open_refuses_what_the_specification_names() {
    let mut r = ring_with(
        2,
        MsgConfig {
            max_queues: 2,
            max_queue_size: 1000,
            ..MsgConfig::default()
        },
    );
    let a = Some(attrs(true));
    let mut o = |name: &str, flags, a| call(&mut r, 1, 1, open_req(name, flags, a));
    assert_eq!(o("", OPEN_CREATE, a), err(AisError::InvalidParam));
    assert_eq!(
        o(&"x".repeat(MAX_NAME + 1), OPEN_CREATE, a),
        err(AisError::NameTooLong)
    );
    assert_eq!(o("q", 0x80 | OPEN_CREATE, a), err(AisError::BadFlags));
    assert_eq!(o("q", OPEN_CREATE, None), err(AisError::InvalidParam));
    assert_eq!(o("q", 0, a), err(AisError::InvalidParam));
    let bad = Attributes {
        creation_flags: 0x10,
        ..attrs(true)
    };
    assert_eq!(o("q", OPEN_CREATE, Some(bad)), err(AisError::BadFlags));
    assert_eq!(o("q", 0, None), err(AisError::NotExist));
    let big = Attributes {
        size: [600, 600, 0, 0],
        ..attrs(true)
    };
    assert_eq!(o("q", OPEN_CREATE, Some(big)), err(AisError::NoResources));
    assert!(matches!(
        o("q", OPEN_CREATE, a),
        Reply::Service(Response::Opened { .. })
    ));
    // Open elsewhere: BUSY; other attributes: EXIST.
    assert_eq!(
        call(&mut r, 2, 1, open_req("q", 0, None)),
        err(AisError::Busy)
    );
    assert_eq!(
        call(&mut r, 2, 1, open_req("q", OPEN_CREATE, Some(attrs(false)))),
        err(AisError::Exist)
    );
    create(&mut r, 2, 2, "q2", true);
    assert_eq!(
        call(&mut r, 2, 1, open_req("q3", OPEN_CREATE, a)),
        err(AisError::NoResources)
    );
}

#[test]
fn gets_take_the_highest_priority_first_and_send_checks_its_limits() {
    let mut r = ring_of(3);
    let h = create(&mut r, 1, 1, "q", true);
    assert_eq!(send(&mut r, 2, "q", 3, "low"), Reply::Ok);
    assert_eq!(send(&mut r, 3, "q", 0, "high1"), Reply::Ok);
    assert_eq!(send(&mut r, 2, "q", 0, "high2"), Reply::Ok);
    assert_eq!(send(&mut r, 2, "q", 1, "mid"), Reply::Ok);
    // Area 3 holds 100 bytes: 3 + 97 fits, one more byte does not.
    assert_eq!(send(&mut r, 2, "q", 3, &"x".repeat(97)), Reply::Ok);
    assert_eq!(send(&mut r, 3, "q", 3, "y"), err(AisError::QueueFull));
    assert_eq!(send(&mut r, 2, "q", 4, "y"), err(AisError::InvalidParam));
    assert_eq!(send(&mut r, 2, "none", 0, "y"), err(AisError::NotExist));
    assert_eq!(send(&mut r, 2, "", 0, "y"), err(AisError::InvalidParam));
    let huge = "z".repeat(MsgConfig::default().max_message_size as usize + 1);
    assert_eq!(send(&mut r, 2, "q", 0, &huge), err(AisError::TooBig));
    match status(&mut r, 3, "q") {
        Reply::Service(Response::Status(s)) => {
            assert!(s.open);
            assert_eq!(s.usage[0].messages, 2);
            assert_eq!(s.usage[3].used, 100);
        }
        other => panic!("{other:?}"),
    }
    let got: Vec<String> = (0..5).map(|_| data_of(get(&mut r, 1, 1, h, 0))).collect();
    assert_eq!(
        got,
        ["high1", "high2", "mid", "low", "x".repeat(97).as_str()]
    );
    // Empty, no wait: TIMEOUT. Another connection's handle: BAD_HANDLE.
    assert_eq!(get(&mut r, 1, 1, h, 0), Some(err(AisError::Timeout)));
    assert_eq!(get(&mut r, 1, 2, h, 0), Some(err(AisError::BadHandle)));
    assert_eq!(status(&mut r, 2, "nope"), err(AisError::NotExist));
    // Every node took the same messages out.
    for n in 1..=3 {
        match status(&mut r, n, "q") {
            Reply::Service(Response::Status(s)) => {
                assert!(s.usage.iter().all(|u| u.messages == 0 && u.used == 0));
            }
            other => panic!("{other:?}"),
        }
    }
}

#[test]
fn a_waiting_get_is_answered_by_the_next_send_or_times_out() {
    let mut r = ring_of(2);
    let h = create(&mut r, 1, 1, "q", true);
    assert_eq!(get(&mut r, 1, 1, h, 100 * MS), None);
    assert_eq!(send(&mut r, 2, "q", 2, "late"), Reply::Ok);
    let replies = r.node(1).replies::<Response>();
    assert!(
        matches!(&replies[..], [(77, Reply::Service(Response::Message { message, .. }))] if message.data == "late"),
        "{replies:?}"
    );
    // Nothing comes: TIMEOUT when the time is up, not before.
    assert_eq!(get(&mut r, 1, 1, h, 100 * MS), None);
    r.node(1).core.tick(50 * MS);
    r.flush();
    assert!(r.node(1).replies::<Response>().is_empty());
    r.node(1).core.tick(100 * MS);
    r.flush();
    assert_eq!(
        r.node(1).replies::<Response>(),
        [(77, err(AisError::Timeout))]
    );
}

#[test]
fn a_closed_queue_keeps_its_messages_until_its_retention_time_passes() {
    let mut r = ring_of(2);
    let h = create(&mut r, 1, 1, "temp", false);
    let p = create(&mut r, 1, 2, "kept", true);
    assert_eq!(send(&mut r, 2, "temp", 0, "m1"), Reply::Ok);
    assert_eq!(call(&mut r, 1, 1, Request::Close { handle: h }), Reply::Ok);
    assert_eq!(
        call(&mut r, 1, 1, Request::Close { handle: h }),
        err(AisError::BadHandle)
    );
    assert_eq!(call(&mut r, 1, 2, Request::Close { handle: p }), Reply::Ok);
    // Closed queues still take messages.
    assert_eq!(send(&mut r, 2, "temp", 0, "m2"), Reply::Ok);
    assert!(!is_open(&mut r, 2, "temp"));
    // The next opener gets them, at another node.
    let h2 = match call(&mut r, 2, 2, open_req("temp", 0, None)) {
        Reply::Service(Response::Opened { handle }) => handle,
        other => panic!("{other:?}"),
    };
    assert_eq!(data_of(get(&mut r, 2, 2, h2, 0)), "m1");
    assert_eq!(call(&mut r, 2, 2, Request::Close { handle: h2 }), Reply::Ok);
    // Retention (50 ms) runs from the close at each node's clock: 40 ms is not enough.
    for n in 1..=2 {
        r.node(n).core.tick(40 * MS);
    }
    r.flush();
    assert!(matches!(status(&mut r, 1, "temp"), Reply::Service(_)));
    for n in 1..=2 {
        r.node(n).core.tick(200 * MS);
    }
    r.flush();
    for n in 1..=2 {
        assert_eq!(status(&mut r, n, "temp"), err(AisError::NotExist));
        // The persistent queue stays.
        assert!(matches!(status(&mut r, n, "kept"), Reply::Service(_)));
    }
}

#[test]
fn open_empty_drops_the_messages_and_unlink_frees_the_name() {
    let mut r = ring_of(2);
    let h = create(&mut r, 1, 1, "q", true);
    assert_eq!(send(&mut r, 2, "q", 0, "m1"), Reply::Ok);
    assert_eq!(call(&mut r, 1, 1, Request::Close { handle: h }), Reply::Ok);
    let h = match call(&mut r, 1, 1, open_req("q", OPEN_EMPTY, None)) {
        Reply::Service(Response::Opened { handle }) => handle,
        other => panic!("{other:?}"),
    };
    assert_eq!(get(&mut r, 1, 1, h, 0), Some(err(AisError::Timeout)));
    // Unlinked while open: the name goes now, the queue at its close.
    assert_eq!(
        call(&mut r, 2, 1, Request::Unlink { name: b("q") }),
        Reply::Ok
    );
    assert_eq!(
        call(&mut r, 2, 1, Request::Unlink { name: b("q") }),
        err(AisError::NotExist)
    );
    assert_eq!(send(&mut r, 2, "q", 0, "m"), err(AisError::NotExist));
    let h2 = create(&mut r, 2, 1, "q", false);
    assert_eq!(call(&mut r, 1, 1, Request::Close { handle: h }), Reply::Ok);
    assert_eq!(
        call(&mut r, 2, 1, Request::Unlink { name: b("") }),
        err(AisError::InvalidParam)
    );
    // The new one is unaffected.
    assert_eq!(send(&mut r, 1, "q", 0, "new"), Reply::Ok);
    assert_eq!(data_of(get(&mut r, 2, 1, h2, 0)), "new");
}

#[test]
fn receive_and_delivered_callbacks() {
    let mut r = ring_of(2);
    let h = match call(
        &mut r,
        1,
        1,
        open_req("q", OPEN_CREATE | OPEN_RECEIVE_CALLBACK, Some(attrs(true))),
    ) {
        Reply::Service(Response::Opened { handle }) => handle,
        other => panic!("{other:?}"),
    };
    let (reply, cbs) = call_cb(
        &mut r,
        2,
        1,
        Request::SendAsync {
            destination: b("q"),
            message: msg(0, "a"),
            invocation: 5,
            ack: true,
        },
    );
    assert_eq!(reply, Some(Reply::Ok));
    assert_eq!(
        cbs,
        [Callback::Delivered {
            invocation: 5,
            result: Ok(())
        }]
    );
    let cbs: Vec<_> = r
        .node(1)
        .take()
        .iter()
        .filter_map(|e| e.callback::<Callback>())
        .map(|(_, c)| c)
        .collect();
    assert_eq!(cbs, [Callback::Received { handle: h }]);
    // Refused: the callback says why; without ack, no callback.
    let (_, cbs) = call_cb(
        &mut r,
        2,
        1,
        Request::SendAsync {
            destination: b("q"),
            message: msg(0, &"f".repeat(100)),
            invocation: 6,
            ack: true,
        },
    );
    assert_eq!(
        cbs,
        [Callback::Delivered {
            invocation: 6,
            result: Err(AisError::QueueFull)
        }]
    );
    let (_, cbs) = call_cb(
        &mut r,
        2,
        1,
        Request::SendAsync {
            destination: b("q"),
            message: msg(1, "b"),
            invocation: 7,
            ack: false,
        },
    );
    assert!(cbs.is_empty());
}

#[test]
fn the_queue_of_a_departed_opener_is_closed_everywhere_and_keeps_its_messages() {
    let mut r = ring_of(3);
    create(&mut r, 1, 1, "conn", true);
    create(&mut r, 3, 1, "node", true);
    assert_eq!(send(&mut r, 2, "node", 0, "m1"), Reply::Ok);
    // A process goes: its queue closes.
    r.node(1).core.disconnected(1);
    r.flush();
    assert!(!is_open(&mut r, 2, "conn"));
    // A node goes: its queue closes at the others' sync; its messages stay.
    r.config(&[1, 2], &[1, 2]);
    r.flush();
    assert!(!is_open(&mut r, 2, "node"));
    let h = match call(&mut r, 2, 1, open_req("node", 0, None)) {
        Reply::Service(Response::Opened { handle }) => handle,
        other => panic!("{other:?}"),
    };
    assert_eq!(data_of(get(&mut r, 2, 1, h, 0)), "m1");
}

#[test]
fn after_a_partition_every_node_holds_the_same_merge_with_each_message_once() {
    let mut r = ring_of(3);
    let h1 = create(&mut r, 1, 1, "q", true);
    for m in ["a", "b", "c"] {
        assert_eq!(send(&mut r, 2, "q", 0, m), Reply::Ok);
    }
    // {1} and {2, 3} apart: 1 takes "a" and gets "L"; {2, 3} sends "R" and creates "x",
    // which {1} creates too.
    r.config(&[1], &[1]);
    r.flush();
    assert_eq!(data_of(get(&mut r, 1, 1, h1, 0)), "a");
    assert_eq!(send(&mut r, 1, "q", 0, "L"), Reply::Ok);
    let x1 = create(&mut r, 1, 2, "x", true);
    assert_eq!(send(&mut r, 1, "x", 0, "x-left"), Reply::Ok);
    r.config(&[2, 3], &[2, 3]);
    r.flush();
    assert_eq!(send(&mut r, 3, "q", 0, "R"), Reply::Ok);
    assert!(!is_open(&mut r, 3, "q"));
    let x3 = create(&mut r, 3, 2, "x", true);
    assert_eq!(send(&mut r, 2, "x", 0, "x-right"), Reply::Ok);
    r.config(&[1, 2, 3], &[1, 2, 3]);
    r.flush();
    let lists: Vec<_> = (1..=3)
        .map(|n| call(&mut r, n, 1, Request::List { start: 0 }))
        .collect();
    assert_eq!(lists[0], lists[1]);
    assert_eq!(lists[0], lists[2]);
    // 1 is still the opener of "q": b, c, L, R; "a" is not back.
    let got: Vec<String> = (0..4).map(|_| data_of(get(&mut r, 1, 1, h1, 0))).collect();
    assert_eq!(got, ["b", "c", "L", "R"]);
    assert_eq!(get(&mut r, 1, 1, h1, 0), Some(err(AisError::Timeout)));
    // "x": {1}'s ring came first, its queue keeps the name and both messages; 3's handle
    // is on the newer one, now unlinked.
    let mut xs = Vec::new();
    while let Some(Reply::Service(Response::Message { message, .. })) = get(&mut r, 1, 2, x1, 0) {
        xs.push(message.data);
    }
    assert_eq!(xs, ["x-left", "x-right"]);
    assert_eq!(get(&mut r, 3, 2, x3, 0), Some(err(AisError::Timeout)));
    assert_eq!(call(&mut r, 3, 2, Request::Close { handle: x3 }), Reply::Ok);
}

#[test]
fn malformed_ring_messages_change_nothing_and_are_counted() {
    let mut r = ring_of(2);
    create(&mut r, 1, 1, "q", true);
    let before = call(&mut r, 2, 1, Request::List { start: 0 });
    let mut garbage = ring::encode(
        ID,
        &RingMessage::Summary {
            rep: 1,
            seq: 4,
            held: vec![],
            opens: vec![],
            deleted: vec![],
        },
    )
    .to_vec();
    garbage.truncate(garbage.len() - 3);
    r.inject(1, Bytes::from(garbage));
    let mut unknown = ring::encode(
        ID,
        &RingMessage::Summary {
            rep: 1,
            seq: 4,
            held: vec![],
            opens: vec![],
            deleted: vec![],
        },
    )
    .to_vec();
    unknown[3] = 0xee;
    r.inject(2, Bytes::from(unknown));
    assert_eq!(call(&mut r, 2, 1, Request::List { start: 0 }), before);
    assert_eq!(r.node(2).core.core_counters().exec_malformed, 2);
}

#[test]
fn a_stale_update_is_refused_with_try_again() {
    let mut r = ring_of(2);
    let h = create(&mut r, 1, 1, "q", true);
    // A send submitted, then a configuration change before it is delivered.
    r.node(2).core.request_value(
        1,
        9,
        &Request::Send {
            destination: b("q"),
            message: msg(0, "m"),
        },
    );
    r.node(2).run();
    r.config(&[1, 2], &[1, 2]);
    r.flush();
    let replies = r.node(2).replies::<Response>();
    assert!(
        replies
            .iter()
            .any(|(id, rep)| *id == 9 && matches!(rep, Reply::Error(AisError::TryAgain))),
        "{replies:?}"
    );
    assert_eq!(get(&mut r, 1, 1, h, 0), Some(err(AisError::Timeout)));
}

fn group_op(r: &mut TestRing, node: u32, req: Request) -> Reply<Response> {
    call(r, node, 1, req)
}

fn gname(s: &str) -> Bytes {
    b(s)
}

/// Opens queue `name` at `node` (connection 2) and puts it in group `g`.
fn member(r: &mut TestRing, node: u32, name: &str, g: &str) -> u64 {
    let h = create(r, node, 2, name, true);
    assert_eq!(
        group_op(
            r,
            node,
            Request::GroupInsert {
                group: gname(g),
                queue: b(name),
            }
        ),
        Reply::Ok
    );
    h
}

fn drain(r: &mut TestRing, node: u32, h: u64) -> Vec<String> {
    let mut out = Vec::new();
    while let Some(Reply::Service(Response::Message { message, .. })) = get(r, node, 2, h, 0) {
        out.push(String::from_utf8(message.data.to_vec()).unwrap());
    }
    out
}

#[test]
fn group_calls_refuse_what_the_specification_names() {
    let mut r = ring_with(
        2,
        MsgConfig {
            max_groups: 1,
            ..MsgConfig::default()
        },
    );
    let create_g = |policy| Request::GroupCreate {
        name: gname("g"),
        policy,
    };
    assert_eq!(
        group_op(&mut r, 1, create_g(9)),
        err(AisError::InvalidParam)
    );
    assert_eq!(
        group_op(
            &mut r,
            1,
            Request::GroupCreate {
                name: gname(""),
                policy: POLICY_ROUND_ROBIN
            }
        ),
        err(AisError::InvalidParam)
    );
    assert_eq!(group_op(&mut r, 1, create_g(POLICY_ROUND_ROBIN)), Reply::Ok);
    assert_eq!(
        group_op(&mut r, 2, create_g(POLICY_ROUND_ROBIN)),
        err(AisError::Exist)
    );
    assert_eq!(
        group_op(
            &mut r,
            2,
            Request::GroupCreate {
                name: gname("h"),
                policy: POLICY_ROUND_ROBIN
            }
        ),
        err(AisError::NoResources)
    );
    // A queue cannot take a group's name, nor a group a queue's.
    assert_eq!(
        call(&mut r, 1, 2, open_req("g", OPEN_CREATE, Some(attrs(true)))),
        err(AisError::Exist)
    );
    create(&mut r, 1, 2, "q", true);
    let ins = |g: &str, q: &str| Request::GroupInsert {
        group: gname(g),
        queue: b(q),
    };
    assert_eq!(
        group_op(&mut r, 2, ins("none", "q")),
        err(AisError::NotExist)
    );
    assert_eq!(
        group_op(&mut r, 2, ins("g", "none")),
        err(AisError::NotExist)
    );
    assert_eq!(group_op(&mut r, 2, ins("g", "q")), Reply::Ok);
    assert_eq!(group_op(&mut r, 2, ins("g", "q")), err(AisError::Exist));
    let rm = |g: &str, q: &str| Request::GroupRemove {
        group: gname(g),
        queue: b(q),
    };
    assert_eq!(group_op(&mut r, 1, rm("g", "q")), Reply::Ok);
    assert_eq!(group_op(&mut r, 1, rm("g", "q")), err(AisError::NotExist));
    assert_eq!(
        group_op(&mut r, 1, rm("none", "q")),
        err(AisError::NotExist)
    );
    // An empty group takes no message.
    assert_eq!(
        send(&mut r, 2, "g", 0, "m"),
        err(AisError::QueueNotAvailable)
    );
    let track = |flags| Request::GroupTrack {
        group: gname("g"),
        flags,
    };
    assert_eq!(group_op(&mut r, 1, track(0)), err(AisError::BadFlags));
    assert_eq!(
        group_op(&mut r, 1, track(TRACK_CHANGES | TRACK_CHANGES_ONLY)),
        err(AisError::BadFlags)
    );
    assert_eq!(
        group_op(
            &mut r,
            1,
            Request::GroupTrack {
                group: gname("none"),
                flags: TRACK_CURRENT
            }
        ),
        err(AisError::NotExist)
    );
    assert_eq!(
        group_op(&mut r, 1, Request::GroupTrackStop { group: gname("g") }),
        err(AisError::NotExist)
    );
    assert_eq!(
        group_op(&mut r, 1, Request::GroupDelete { group: gname("g") }),
        Reply::Ok
    );
    assert_eq!(
        group_op(&mut r, 1, Request::GroupDelete { group: gname("g") }),
        err(AisError::NotExist)
    );
}

#[test]
fn round_robin_sends_each_member_in_turn_from_any_node() {
    let mut r = ring_of(3);
    assert_eq!(
        group_op(
            &mut r,
            1,
            Request::GroupCreate {
                name: gname("g"),
                policy: POLICY_ROUND_ROBIN
            }
        ),
        Reply::Ok
    );
    let ha = member(&mut r, 1, "a", "g");
    let hb = member(&mut r, 2, "b", "g");
    let hc = member(&mut r, 3, "c", "g");
    for (i, node) in [1, 2, 3, 3, 2, 1].into_iter().enumerate() {
        assert_eq!(send(&mut r, node, "g", 0, &format!("m{i}")), Reply::Ok);
    }
    assert_eq!(drain(&mut r, 1, ha), ["m0", "m3"]);
    assert_eq!(drain(&mut r, 2, hb), ["m1", "m4"]);
    assert_eq!(drain(&mut r, 3, hc), ["m2", "m5"]);
}

#[test]
fn local_policies_choose_among_the_queues_opened_at_the_senders_node() {
    let mut r = ring_of(2);
    for (g, policy) in [
        ("lrr", POLICY_LOCAL_ROUND_ROBIN),
        ("best", POLICY_LOCAL_BEST_QUEUE),
    ] {
        assert_eq!(
            group_op(
                &mut r,
                1,
                Request::GroupCreate {
                    name: gname(g),
                    policy
                }
            ),
            Reply::Ok
        );
    }
    // Node 1 opens a1 and a2; node 2 opens b. All in both groups.
    let h1 = member(&mut r, 1, "a1", "lrr");
    let h2 = create(&mut r, 1, 1, "a2", true);
    let hb = member(&mut r, 2, "b", "lrr");
    for q in ["a2", "a1", "b"] {
        let q = if q == "a2" { "a2" } else { q };
        if q == "a2" {
            assert_eq!(
                group_op(
                    &mut r,
                    1,
                    Request::GroupInsert {
                        group: gname("lrr"),
                        queue: b(q)
                    }
                ),
                Reply::Ok
            );
        }
        assert_eq!(
            group_op(
                &mut r,
                1,
                Request::GroupInsert {
                    group: gname("best"),
                    queue: b(q)
                }
            ),
            Reply::Ok
        );
    }
    // Local round robin from node 1: a1, a2, a1; from node 2: b only.
    for m in ["x1", "x2", "x3"] {
        assert_eq!(send(&mut r, 1, "lrr", 0, m), Reply::Ok);
    }
    assert_eq!(send(&mut r, 2, "lrr", 0, "y1"), Reply::Ok);
    assert_eq!(drain(&mut r, 1, h1), ["x1", "x3"]);
    let mut a2 = Vec::new();
    while let Some(Reply::Service(Response::Message { message, .. })) = get(&mut r, 1, 1, h2, 0) {
        a2.push(message.data);
    }
    assert_eq!(a2, ["x2"]);
    assert_eq!(drain(&mut r, 2, hb), ["y1"]);
    // Local best queue: a2 holds 50 bytes, so node 1's sends go to a1 (100 free) while it
    // has more room: 30, 10, 20 (40 left), then 5 to a2 (50 free).
    assert_eq!(send(&mut r, 2, "a2", 0, &"f".repeat(50)), Reply::Ok);
    for (c, n) in [('1', 30), ('2', 10), ('3', 20), ('4', 5)] {
        assert_eq!(
            send(&mut r, 1, "best", 0, &c.to_string().repeat(n)),
            Reply::Ok
        );
    }
    let lens = |v: Vec<String>| v.iter().map(String::len).collect::<Vec<_>>();
    assert_eq!(lens(drain(&mut r, 1, h1)), [30, 10, 20]);
    let mut a2 = Vec::new();
    while let Some(Reply::Service(Response::Message { message, .. })) = get(&mut r, 1, 1, h2, 0) {
        a2.push(message.data.len());
    }
    assert_eq!(a2, [50, 5]);
    // A node with no member queue open: QUEUE_NOT_AVAILABLE for local policies.
    assert_eq!(call(&mut r, 2, 2, Request::Close { handle: hb }), Reply::Ok);
    assert_eq!(
        send(&mut r, 2, "best", 0, "z"),
        err(AisError::QueueNotAvailable)
    );
    assert_eq!(
        send(&mut r, 2, "lrr", 0, "z"),
        err(AisError::QueueNotAvailable)
    );
}

#[test]
fn trackers_hear_of_every_membership_change() {
    let mut r = ring_of(2);
    assert_eq!(
        group_op(
            &mut r,
            1,
            Request::GroupCreate {
                name: gname("g"),
                policy: POLICY_ROUND_ROBIN
            }
        ),
        Reply::Ok
    );
    create(&mut r, 1, 2, "a", true);
    assert_eq!(
        group_op(
            &mut r,
            1,
            Request::GroupInsert {
                group: gname("g"),
                queue: b("a")
            }
        ),
        Reply::Ok
    );
    // Node 2 tracks with current and changes.
    let (reply, _) = call_cb(
        &mut r,
        2,
        1,
        Request::GroupTrack {
            group: gname("g"),
            flags: TRACK_CURRENT | TRACK_CHANGES_ONLY,
        },
    );
    assert_eq!(
        reply,
        Some(Reply::Service(Response::Group {
            policy: POLICY_ROUND_ROBIN,
            items: vec![GroupItem {
                queue: b("a"),
                change: CHANGE_NONE
            }]
        }))
    );
    create(&mut r, 1, 2, "b", true);
    r.node(2).take();
    assert_eq!(
        group_op(
            &mut r,
            1,
            Request::GroupInsert {
                group: gname("g"),
                queue: b("b")
            }
        ),
        Reply::Ok
    );
    let cbs = |r: &mut TestRing| -> Vec<Callback> {
        r.node(2)
            .take()
            .iter()
            .filter_map(|e| e.callback::<Callback>())
            .map(|(_, c)| c)
            .collect()
    };
    assert_eq!(
        cbs(&mut r),
        [Callback::GroupTrack {
            group: gname("g"),
            policy: POLICY_ROUND_ROBIN,
            members: 2,
            items: vec![GroupItem {
                queue: b("b"),
                change: CHANGE_ADDED
            }]
        }]
    );
    // A member queue unlinked and closed leaves the group.
    assert_eq!(
        call(&mut r, 1, 1, Request::Unlink { name: b("a") }),
        Reply::Ok
    );
    assert_eq!(
        cbs(&mut r),
        [Callback::GroupTrack {
            group: gname("g"),
            policy: POLICY_ROUND_ROBIN,
            members: 1,
            items: vec![GroupItem {
                queue: b("a"),
                change: CHANGE_REMOVED
            }]
        }]
    );
    assert_eq!(
        group_op(&mut r, 2, Request::GroupTrackStop { group: gname("g") }),
        Reply::Ok
    );
    assert_eq!(
        group_op(
            &mut r,
            1,
            Request::GroupRemove {
                group: gname("g"),
                queue: b("b")
            }
        ),
        Reply::Ok
    );
    assert!(cbs(&mut r).is_empty());
}

#[test]
fn groups_are_merged_after_a_partition() {
    let mut r = ring_of(2);
    assert_eq!(
        group_op(
            &mut r,
            1,
            Request::GroupCreate {
                name: gname("g"),
                policy: POLICY_ROUND_ROBIN
            }
        ),
        Reply::Ok
    );
    create(&mut r, 1, 2, "a", true);
    create(&mut r, 2, 2, "b", true);
    r.config(&[1], &[1]);
    r.flush();
    assert_eq!(
        group_op(
            &mut r,
            1,
            Request::GroupInsert {
                group: gname("g"),
                queue: b("a")
            }
        ),
        Reply::Ok
    );
    r.config(&[2], &[2]);
    r.flush();
    assert_eq!(
        group_op(
            &mut r,
            2,
            Request::GroupCreate {
                name: gname("only2"),
                policy: POLICY_LOCAL_BEST_QUEUE
            }
        ),
        Reply::Ok
    );
    r.config(&[1, 2], &[1, 2]);
    r.flush();
    for n in 1..=2 {
        let got = call(
            &mut r,
            n,
            1,
            Request::GroupTrack {
                group: gname("g"),
                flags: TRACK_CURRENT,
            },
        );
        assert_eq!(
            got,
            Reply::Service(Response::Group {
                policy: POLICY_ROUND_ROBIN,
                items: vec![GroupItem {
                    queue: b("a"),
                    change: CHANGE_NONE
                }]
            })
        );
        assert!(matches!(
            call(
                &mut r,
                n,
                1,
                Request::GroupTrack {
                    group: gname("only2"),
                    flags: TRACK_CURRENT
                }
            ),
            Reply::Service(Response::Group { .. })
        ));
    }
}

#[test]
fn malformed_requests_disconnect_change_nothing_and_are_counted() {
    let mut r = ring_of(2);
    create(&mut r, 1, 1, "q", true);
    let before = call(&mut r, 2, 1, Request::List { start: 0 });
    // A send cut short, and an op MSG does not have.
    let mut w = ais_proto::codec::Writer::with_capacity(16);
    w.short_bytes(b"q").u32(1);
    let cut = Bytes::from(w.finish());
    r.node(2).core.request(2, 5, 64, cut);
    r.node(2).run();
    assert!(
        r.node(2)
            .take()
            .iter()
            .any(|e| matches!(e, crate::exec::Effect::Disconnect { conn: 2 }))
    );
    r.node(2).connect(2, 100, ID);
    r.node(2).core.request(2, 6, 999, Bytes::new());
    r.flush();
    assert_eq!(call(&mut r, 2, 1, Request::List { start: 0 }), before);
    assert_eq!(call(&mut r, 1, 1, Request::List { start: 0 }), before);
    assert!(r.node(2).core.core_counters().ipc_malformed >= 1);
}

fn send_receive(
    r: &mut TestRing,
    node: u32,
    conn: u64,
    to: &str,
    reply_size: u64,
) -> Option<Reply<Response>> {
    call_cb(
        r,
        node,
        conn,
        Request::SendReceive {
            destination: b(to),
            message: msg(1, "question"),
            reply_size,
            timeout: 100 * MS,
        },
    )
    .0
}

/// Gets the head message of `h` at `node`: its data and key (the sender id).
fn get_key(r: &mut TestRing, node: u32, conn: u64, h: u64) -> (String, MsgKey) {
    match get(r, node, conn, h, 0) {
        Some(Reply::Service(Response::Message { message, key, .. })) => {
            (String::from_utf8(message.data.to_vec()).unwrap(), key)
        }
        other => panic!("not a message: {other:?}"),
    }
}

fn reply(r: &mut TestRing, node: u32, to: MsgKey, data: &str) -> Reply<Response> {
    call(
        r,
        node,
        1,
        Request::Reply {
            to,
            message: msg(0, data),
        },
    )
}

fn replied(r: &mut TestRing, node: u32) -> Vec<(u64, Reply<Response>)> {
    r.node(node).replies::<Response>()
}

fn answer(data: &str) -> Reply<Response> {
    Reply::Service(Response::Reply {
        message: msg(0, data),
        send_time: 0,
    })
}

/// The caller's answers with the reply's send time zeroed (the ring's clock).
fn answers(r: &mut TestRing, node: u32) -> Vec<(u64, Reply<Response>)> {
    replied(r, node)
        .into_iter()
        .map(|(id, rep)| match rep {
            Reply::Service(Response::Reply { message, .. }) => (
                id,
                Reply::Service(Response::Reply {
                    message,
                    send_time: 0,
                }),
            ),
            other => (id, other),
        })
        .collect()
}

#[test]
fn a_reply_reaches_its_waiting_sender_once_and_only_it() {
    let mut r = ring_of(3);
    let h = create(&mut r, 2, 1, "q", true);
    // Node 1's caller waits; node 3 sends plainly.
    assert_eq!(send_receive(&mut r, 1, 2, "q", 64), None);
    assert_eq!(send(&mut r, 3, "q", 1, "plain"), Reply::Ok);
    let (data, key) = get_key(&mut r, 2, 1, h);
    assert_eq!(data, "question");
    assert_eq!(key.node, 1);
    let (_, plain) = get_key(&mut r, 2, 1, h);
    // A reply to a message not sent with send-receive: NOT_EXIST.
    assert_eq!(reply(&mut r, 2, plain, "x"), err(AisError::NotExist));
    assert!(replied(&mut r, 1).is_empty());
    // The reply is handed to the waiting caller, nobody else.
    assert_eq!(reply(&mut r, 2, key, "answer"), Reply::Ok);
    assert_eq!(answers(&mut r, 1), [(77, answer("answer"))]);
    assert!(replied(&mut r, 3).is_empty());
    // A second reply finds nobody waiting.
    assert_eq!(reply(&mut r, 3, key, "again"), err(AisError::NotExist));
    assert!(replied(&mut r, 1).is_empty());
    let s = stats(&mut r, 2);
    assert_eq!(s["msg_replies"], 1);
    assert_eq!(s["msg_replies_refused"], 2);
    assert_eq!(s["msg_replies_awaited"], 0);
}

struct Stats(BTreeMap<&'static str, u64>);

impl Visitor for Stats {
    fn counter(&mut self, name: &'static str, value: u64) {
        self.0.insert(name, value);
    }
    fn gauge(&mut self, name: &'static str, value: u64) {
        self.0.insert(name, value);
    }
}

fn stats(r: &mut TestRing, node: u32) -> BTreeMap<&'static str, u64> {
    use dataplane::stats::Visit;
    let mut s = Stats(BTreeMap::new());
    r.node(node).core.visit(&mut s);
    s.0
}

#[test]
fn a_reply_that_does_not_fit_is_refused_with_no_space_and_the_caller_waits_on() {
    let mut r = ring_of(2);
    let h = create(&mut r, 2, 1, "q", true);
    assert_eq!(send_receive(&mut r, 1, 2, "q", 4), None);
    let (_, key) = get_key(&mut r, 2, 1, h);
    assert_eq!(reply(&mut r, 2, key, "12345"), err(AisError::NoSpace));
    assert!(replied(&mut r, 1).is_empty());
    assert_eq!(reply(&mut r, 2, key, "1234"), Reply::Ok);
    assert_eq!(answers(&mut r, 1), [(77, answer("1234"))]);
}

#[test]
fn a_send_receive_times_out_at_its_node_and_a_late_reply_is_refused() {
    let mut r = ring_of(2);
    let h = create(&mut r, 2, 1, "q", true);
    assert_eq!(send_receive(&mut r, 1, 2, "q", 64), None);
    let (_, key) = get_key(&mut r, 2, 1, h);
    // Node 2's clock does not count: the caller's node measures the wait.
    r.node(2).core.tick(500 * MS);
    r.flush();
    assert!(replied(&mut r, 1).is_empty());
    r.node(1).core.tick(50 * MS);
    r.flush();
    assert!(replied(&mut r, 1).is_empty());
    r.node(1).core.tick(100 * MS);
    r.flush();
    assert_eq!(replied(&mut r, 1), [(77, err(AisError::Timeout))]);
    assert_eq!(reply(&mut r, 2, key, "late"), err(AisError::NotExist));
    assert!(replied(&mut r, 1).is_empty());
}

#[test]
fn send_receive_refuses_what_send_refuses() {
    let mut r = ring_of(2);
    create(&mut r, 2, 1, "q", true);
    assert_eq!(
        send_receive(&mut r, 1, 2, "nowhere", 64),
        Some(err(AisError::NotExist))
    );
    let big = Request::SendReceive {
        destination: b("q"),
        message: msg(0, &"f".repeat(101)),
        reply_size: 64,
        timeout: 100 * MS,
    };
    assert_eq!(call(&mut r, 1, 2, big), err(AisError::QueueFull));
    let bad = Request::SendReceive {
        destination: b("q"),
        message: msg(4, "x"),
        reply_size: 64,
        timeout: 100 * MS,
    };
    assert_eq!(call(&mut r, 1, 2, bad), err(AisError::InvalidParam));
    let bad = Request::Reply {
        to: MsgKey::default(),
        message: msg(4, "x"),
    };
    assert_eq!(call(&mut r, 1, 2, bad), err(AisError::InvalidParam));
    assert_eq!(stats(&mut r, 1)["msg_replies_awaited"], 0);
}

#[test]
fn a_reply_to_a_caller_whose_process_or_node_is_gone_is_refused() {
    let mut r = ring_of(3);
    let h = create(&mut r, 2, 1, "q", true);
    // The caller's process goes.
    assert_eq!(send_receive(&mut r, 1, 2, "q", 64), None);
    r.node(1).core.disconnected(2);
    r.flush();
    let (_, key) = get_key(&mut r, 2, 1, h);
    assert_eq!(reply(&mut r, 2, key, "x"), err(AisError::NotExist));
    // The caller's node goes: the others forget its calls at the sync.
    assert_eq!(send_receive(&mut r, 3, 2, "q", 64), None);
    let (_, key) = get_key(&mut r, 2, 1, h);
    r.config(&[1, 2], &[1, 2]);
    r.flush();
    assert_eq!(reply(&mut r, 2, key, "x"), err(AisError::NotExist));
}

#[test]
fn a_caller_waits_on_across_a_membership_change() {
    let mut r = ring_of(3);
    let h = create(&mut r, 2, 1, "q", true);
    assert_eq!(send_receive(&mut r, 1, 2, "q", 64), None);
    let (_, key) = get_key(&mut r, 2, 1, h);
    r.config(&[1, 2], &[1, 2]);
    r.flush();
    assert!(replied(&mut r, 1).is_empty());
    assert_eq!(stats(&mut r, 2)["msg_replies_awaited"], 1);
    assert_eq!(reply(&mut r, 2, key, "after"), Reply::Ok);
    assert_eq!(answers(&mut r, 1), [(77, answer("after"))]);
}

#[test]
fn reply_async_tells_its_outcome() {
    let mut r = ring_of(2);
    let h = create(&mut r, 2, 1, "q", true);
    assert_eq!(send_receive(&mut r, 1, 2, "q", 64), None);
    let (_, key) = get_key(&mut r, 2, 1, h);
    for (inv, want) in [(1, Ok(())), (2, Err(AisError::NotExist))] {
        let (rep, cbs) = call_cb(
            &mut r,
            2,
            1,
            Request::ReplyAsync {
                to: key,
                message: msg(0, "async"),
                invocation: inv,
                ack: true,
            },
        );
        assert_eq!(rep, Some(Reply::Ok));
        assert_eq!(
            cbs,
            [Callback::Delivered {
                invocation: inv,
                result: want
            }]
        );
    }
    assert_eq!(answers(&mut r, 1), [(77, answer("async"))]);
}

#[test]
fn cancel_interrupts_the_waiting_gets_of_a_handle_from_any_connection_of_its_process() {
    let mut r = ring_of(2);
    let h = create(&mut r, 2, 1, "q", true);
    r.node(2).connect(3, 200, ID);
    let cancel = Request::Cancel { handle: h };
    // No get waits: NOT_EXIST.
    assert_eq!(call(&mut r, 2, 2, cancel.clone()), err(AisError::NotExist));
    assert_eq!(get(&mut r, 2, 1, h, TIME_END), None);
    // Another process, another node, an unknown handle: BAD_HANDLE.
    assert_eq!(call(&mut r, 2, 3, cancel.clone()), err(AisError::BadHandle));
    assert_eq!(call(&mut r, 1, 2, cancel.clone()), err(AisError::BadHandle));
    assert_eq!(
        call(&mut r, 2, 2, Request::Cancel { handle: h + 9 }),
        err(AisError::BadHandle)
    );
    assert!(replied(&mut r, 2).is_empty());
    // The opener's process, on its other connection: the get ends with INTERRUPT.
    r.node(2).core.request_value(2, 78, &cancel);
    r.flush();
    let mut got = replied(&mut r, 2);
    got.sort_by_key(|(id, _)| *id);
    assert_eq!(got, [(77, err(AisError::Interrupt)), (78, Reply::Ok)]);
    // The queue still works: the next message goes to the next get.
    assert_eq!(send(&mut r, 1, "q", 0, "after"), Reply::Ok);
    assert_eq!(data_of(get(&mut r, 2, 1, h, 0)), "after");
}

#[test]
fn open_async_answers_with_the_open_callback() {
    let mut r = ring_of(2);
    let open_async = |name: &str, flags, a, invocation| Request::OpenAsync {
        name: b(name),
        flags,
        attributes: a,
        invocation,
    };
    let (rep, cbs) = call_cb(
        &mut r,
        1,
        1,
        open_async("q", OPEN_CREATE, Some(attrs(true)), 5),
    );
    assert_eq!(rep, Some(Reply::Ok));
    let h = match &cbs[..] {
        [
            Callback::Opened {
                invocation: 5,
                result: Ok(h),
            },
        ] => *h,
        other => panic!("{other:?}"),
    };
    assert_eq!(send(&mut r, 2, "q", 0, "m"), Reply::Ok);
    assert_eq!(data_of(get(&mut r, 1, 1, h, 0)), "m");
    // Refused at delivery: the callback says why.
    let (rep, cbs) = call_cb(&mut r, 2, 1, open_async("q", 0, None, 6));
    assert_eq!(rep, Some(Reply::Ok));
    assert_eq!(
        cbs,
        [Callback::Opened {
            invocation: 6,
            result: Err(AisError::Busy)
        }]
    );
    // Refused before the ring: answered at once, no callback.
    let (rep, cbs) = call_cb(&mut r, 2, 1, open_async("", 0, None, 7));
    assert_eq!(rep, Some(err(AisError::InvalidParam)));
    assert!(cbs.is_empty());
}
