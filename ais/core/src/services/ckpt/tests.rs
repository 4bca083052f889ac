//! The CKPT calls on a perfect in-memory ring: each call's success and its specified errors,
//! replication, retention, expiry, and merges after partitions.

use super::*;
use crate::exec::testkit::TestRing;
use crate::services::quorum::{Quorum, QuorumConfig};
use ais_proto::ckpt::{Attributes, SectionDescriptor, WriteElement};

const SEC: u64 = 1_000_000_000;

fn attrs(max_sections: u32) -> Attributes {
    Attributes {
        creation_flags: WR_ALL_REPLICAS,
        checkpoint_size: u64::from(max_sections) * 1024,
        retention_duration: TIME_END,
        max_sections,
        max_section_size: 1024,
        max_section_id_size: 16,
    }
}

fn ring_of(n: u32) -> TestRing {
    let mut r = TestRing::new(n, || {
        vec![Box::new(Ckpt::new(CkptConfig::default())) as Box<dyn Service + Send>]
    });
    r.flush();
    r
}

fn b(s: &str) -> Bytes {
    Bytes::copy_from_slice(s.as_bytes())
}

/// Sends `req` and runs the ring until nothing moves: the answer and the callbacks.
fn call_cb(
    r: &mut TestRing,
    node: u32,
    conn: u64,
    req: Request,
) -> (Reply<Response>, Vec<Callback>) {
    r.node(node).core.request_value(conn, 77, &req);
    r.flush();
    let effects = r.node(node).take();
    let reply = effects
        .iter()
        .filter_map(|e| e.reply::<Response>())
        .find(|(c, id, _)| *c == conn && *id == 77)
        .map(|(_, _, r)| r)
        .unwrap_or_else(|| panic!("no answer to {req:?}"));
    let cbs = effects
        .iter()
        .filter_map(|e| e.callback::<Callback>())
        .filter(|(c, _)| *c == conn)
        .map(|(_, cb)| cb)
        .collect();
    (reply, cbs)
}

fn call(r: &mut TestRing, node: u32, conn: u64, req: Request) -> Reply<Response> {
    call_cb(r, node, conn, req).0
}

fn open(
    r: &mut TestRing,
    node: u32,
    conn: u64,
    name: &str,
    flags: u8,
    a: Option<Attributes>,
) -> u64 {
    match call(
        r,
        node,
        conn,
        Request::Open {
            name: b(name),
            flags,
            attributes: a,
        },
    ) {
        Reply::Service(Response::Opened { handle }) => handle,
        other => panic!("open {name}: {other:?}"),
    }
}

fn rw_create(r: &mut TestRing, node: u32, conn: u64, name: &str, max_sections: u32) -> u64 {
    open(
        r,
        node,
        conn,
        name,
        OPEN_CREATE | OPEN_READ | OPEN_WRITE,
        Some(attrs(max_sections)),
    )
}

fn err(e: AisError) -> Reply<Response> {
    Reply::Error(e)
}

fn section(r: &mut TestRing, node: u32, conn: u64, handle: u64, id: &str, data: &str) {
    let got = call(
        r,
        node,
        conn,
        Request::SectionCreate {
            handle,
            section: Some(b(id)),
            expiration_time: TIME_END,
            data: b(data),
        },
    );
    assert_eq!(
        got,
        Reply::Service(Response::SectionCreated { section: b(id) })
    );
}

fn read1(r: &mut TestRing, node: u32, conn: u64, handle: u64, id: &str) -> Reply<Response> {
    call(
        r,
        node,
        conn,
        Request::Read {
            handle,
            elements: vec![ReadElement {
                section: b(id),
                offset: 0,
                size: u64::MAX,
            }],
        },
    )
}

fn data(parts: &[&str]) -> Reply<Response> {
    Reply::Service(Response::Data(parts.iter().map(|p| b(p)).collect()))
}

fn list(r: &mut TestRing, node: u32, conn: u64) -> Vec<ais_proto::ckpt::CheckpointInfo> {
    match call(r, node, conn, Request::List { start: 0 }) {
        Reply::Service(Response::List { items, next: None }) => items,
        other => panic!("{other:?}"),
    }
}

#[test]
fn a_write_at_one_node_is_read_at_every_node() {
    let mut r = ring_of(3);
    r.node(1).connect(1, 100, ID);
    r.node(3).connect(1, 100, ID);
    let h = rw_create(&mut r, 1, 1, "state", 4);
    section(&mut r, 1, 1, h, "s1", "hello");
    let w = Request::Write {
        handle: h,
        elements: vec![WriteElement {
            section: b("s1"),
            offset: 5,
            data: b(" world"),
        }],
    };
    assert_eq!(call(&mut r, 1, 1, w), Reply::Ok);
    let h3 = open(&mut r, 3, 1, "state", OPEN_READ, None);
    assert_eq!(read1(&mut r, 3, 1, h3, "s1"), data(&["hello world"]));
    let ow = Request::Overwrite {
        handle: h,
        section: b("s1"),
        data: b("x"),
    };
    assert_eq!(call(&mut r, 1, 1, ow), Reply::Ok);
    assert_eq!(read1(&mut r, 3, 1, h3, "s1"), data(&["x"]));
    // Every node holds the same replicas, opens included.
    let l1 = list(&mut r, 1, 1);
    assert_eq!(l1, list(&mut r, 3, 1));
    assert_eq!((l1.len(), l1[0].opens, l1[0].status.sections), (1, 2, 1));
    let Reply::Service(Response::Status(s)) = call(&mut r, 3, 1, Request::StatusGet { handle: h3 })
    else {
        panic!("no status")
    };
    assert_eq!((s.sections, s.memory_used, s.attributes), (1, 1, attrs(4)));
}

#[test]
fn open_checks_its_arguments_and_the_name() {
    let mut r = ring_of(1);
    r.node(1).connect(1, 100, ID);
    let mut o = |name: &str, flags: u8, a: Option<Attributes>| {
        call(
            &mut r,
            1,
            1,
            Request::Open {
                name: b(name),
                flags,
                attributes: a,
            },
        )
    };
    assert_eq!(o("x", 0x10, None), err(AisError::BadFlags));
    assert_eq!(o("x", OPEN_CREATE, None), err(AisError::InvalidParam));
    assert_eq!(
        o("x", OPEN_READ, Some(attrs(2))),
        err(AisError::InvalidParam)
    );
    assert_eq!(
        o(&"n".repeat(257), OPEN_READ, None),
        err(AisError::NameTooLong)
    );
    assert_eq!(o("", OPEN_READ, None), err(AisError::InvalidParam));
    assert_eq!(o("missing", OPEN_READ, None), err(AisError::NotExist));
    let two_modes = Attributes {
        creation_flags: WR_ALL_REPLICAS | WR_ACTIVE_REPLICA,
        ..attrs(2)
    };
    assert_eq!(
        o("x", OPEN_CREATE, Some(two_modes)),
        err(AisError::BadFlags)
    );
    let unknown = Attributes {
        creation_flags: WR_ALL_REPLICAS | 0x100,
        ..attrs(2)
    };
    assert_eq!(o("x", OPEN_CREATE, Some(unknown)), err(AisError::BadFlags));
    let too_big = Attributes {
        checkpoint_size: 3 * 1024,
        ..attrs(2)
    };
    assert_eq!(
        o("x", OPEN_CREATE, Some(too_big)),
        err(AisError::InvalidParam)
    );
    assert!(matches!(
        o("x", OPEN_CREATE, Some(attrs(2))),
        Reply::Service(Response::Opened { .. })
    ));
    // Creating it again needs the same attributes, but for the retention duration.
    let longer = Attributes {
        retention_duration: 5,
        ..attrs(2)
    };
    assert!(matches!(
        o("x", OPEN_CREATE, Some(longer)),
        Reply::Service(Response::Opened { .. })
    ));
    assert_eq!(o("x", OPEN_CREATE, Some(attrs(3))), err(AisError::Exist));
}

#[test]
fn handles_are_per_connection_and_checked_for_access() {
    let mut r = ring_of(2);
    r.node(1).connect(1, 100, ID);
    r.node(1).connect(2, 101, ID);
    let rw = rw_create(&mut r, 1, 1, "ck", 1);
    let ro = open(&mut r, 1, 1, "ck", OPEN_READ, None);
    let wo = open(&mut r, 1, 1, "ck", OPEN_WRITE, None);
    let write = |handle| Request::Write {
        handle,
        elements: vec![WriteElement {
            section: Bytes::new(),
            offset: 0,
            data: b("d"),
        }],
    };
    assert_eq!(call(&mut r, 1, 1, write(ro)), err(AisError::Access));
    assert_eq!(call(&mut r, 1, 1, write(wo)), Reply::Ok);
    assert_eq!(read1(&mut r, 1, 1, wo, ""), err(AisError::Access));
    assert_eq!(read1(&mut r, 1, 1, ro, ""), data(&["d"]));
    // Another connection's handle, an unknown one, a closed one.
    assert_eq!(read1(&mut r, 1, 2, ro, ""), err(AisError::BadHandle));
    assert_eq!(read1(&mut r, 1, 1, 999, ""), err(AisError::BadHandle));
    assert_eq!(call(&mut r, 1, 1, Request::Close { handle: ro }), Reply::Ok);
    assert_eq!(read1(&mut r, 1, 1, ro, ""), err(AisError::BadHandle));
    assert_eq!(
        call(&mut r, 1, 1, Request::Close { handle: ro }),
        err(AisError::BadHandle)
    );
    // A connection that goes closes its handles at every node.
    r.node(2).connect(1, 100, ID);
    assert_eq!(list(&mut r, 2, 1)[0].opens, 2);
    r.node(1).core.disconnected(1);
    r.flush();
    let l = list(&mut r, 2, 1);
    assert_eq!(l[0].opens, 0, "closed at node 2 too: {l:?}");
    assert_eq!(read1(&mut r, 1, 2, rw, ""), err(AisError::BadHandle));
}

#[test]
fn sections_give_their_specified_errors() {
    let mut r = ring_of(1);
    r.node(1).connect(1, 100, ID);
    let h = rw_create(&mut r, 1, 1, "ck", 2);
    let create = |id: Option<&str>, d: &str| Request::SectionCreate {
        handle: h,
        section: id.map(b),
        expiration_time: TIME_END,
        data: b(d),
    };
    assert_eq!(
        call(&mut r, 1, 1, create(Some(&"i".repeat(17)), "")),
        err(AisError::InvalidParam)
    );
    assert_eq!(
        call(&mut r, 1, 1, create(Some("big"), &"d".repeat(1025))),
        err(AisError::InvalidParam)
    );
    section(&mut r, 1, 1, h, "a", "");
    assert_eq!(
        call(&mut r, 1, 1, create(Some("a"), "")),
        err(AisError::Exist)
    );
    // A generated id is answered.
    let Reply::Service(Response::SectionCreated { section: g }) =
        call(&mut r, 1, 1, create(None, "g"))
    else {
        panic!("no generated id")
    };
    assert_eq!(g.len(), 12);
    assert_eq!(
        call(&mut r, 1, 1, create(Some("c"), "")),
        err(AisError::NoSpace)
    );
    let del = |s: &str| Request::SectionDelete {
        handle: h,
        section: b(s),
    };
    assert_eq!(call(&mut r, 1, 1, del("zz")), err(AisError::NotExist));
    assert_eq!(call(&mut r, 1, 1, del("")), err(AisError::InvalidParam));
    assert_eq!(call(&mut r, 1, 1, del("a")), Reply::Ok);
    let exp = |s: &str| Request::SectionExpirationTimeSet {
        handle: h,
        section: b(s),
        expiration_time: 5,
    };
    assert_eq!(call(&mut r, 1, 1, exp("a")), err(AisError::NotExist));
    // The default section of a single-section checkpoint cannot be deleted or expire.
    let one = rw_create(&mut r, 1, 1, "one", 1);
    let exp_default = Request::SectionExpirationTimeSet {
        handle: one,
        section: Bytes::new(),
        expiration_time: 5,
    };
    assert_eq!(call(&mut r, 1, 1, exp_default), err(AisError::InvalidParam));
    let create_in_one = Request::SectionCreate {
        handle: one,
        section: Some(b("x")),
        expiration_time: TIME_END,
        data: Bytes::new(),
    };
    assert_eq!(call(&mut r, 1, 1, create_in_one), err(AisError::Exist));
}

#[test]
fn write_and_read_vectors_name_the_failing_element() {
    let mut r = ring_of(2);
    r.node(1).connect(1, 100, ID);
    let h = rw_create(&mut r, 1, 1, "ck", 4);
    section(&mut r, 1, 1, h, "a", "aaaa");
    section(&mut r, 1, 1, h, "b", "bbbb");
    let el = |s: &str, offset, d: &str| WriteElement {
        section: b(s),
        offset,
        data: b(d),
    };
    let w = Request::Write {
        handle: h,
        elements: vec![el("a", 0, "A"), el("b", 0, ""), el("c", 0, "C")],
    };
    assert_eq!(
        call(&mut r, 1, 1, w),
        Reply::Service(Response::WriteFailed {
            index: 1,
            error: AisError::InvalidParam
        })
    );
    assert_eq!(read1(&mut r, 1, 1, h, "a"), data(&["aaaa"]), "none applied");
    let empty = Request::Write {
        handle: h,
        elements: vec![],
    };
    assert_eq!(call(&mut r, 1, 1, empty), err(AisError::InvalidParam));
    let rd = |elements| Request::Read {
        handle: h,
        elements,
    };
    let re = |s: &str, offset, size| ReadElement {
        section: b(s),
        offset,
        size,
    };
    assert_eq!(
        call(&mut r, 1, 1, rd(vec![re("a", 1, 2), re("b", 2, 10)])),
        data(&["aa", "bb"])
    );
    assert_eq!(
        call(&mut r, 1, 1, rd(vec![re("a", 0, 1), re("zz", 0, 1)])),
        Reply::Service(Response::ReadFailed {
            index: 1,
            error: AisError::NotExist
        })
    );
    assert_eq!(
        call(&mut r, 1, 1, rd(vec![re("a", 5, 1)])),
        Reply::Service(Response::ReadFailed {
            index: 0,
            error: AisError::InvalidParam
        })
    );
    // At the end: nothing, not an error.
    assert_eq!(call(&mut r, 1, 1, rd(vec![re("a", 4, 1)])), data(&[""]));
}

#[test]
fn unlink_frees_the_name_while_openers_keep_the_data() {
    let mut r = ring_of(2);
    r.node(1).connect(1, 100, ID);
    r.node(2).connect(1, 100, ID);
    let h = rw_create(&mut r, 1, 1, "ck", 1);
    let w = Request::Overwrite {
        handle: h,
        section: Bytes::new(),
        data: b("old"),
    };
    assert_eq!(call(&mut r, 1, 1, w), Reply::Ok);
    let unlink = || Request::Unlink { name: b("ck") };
    assert_eq!(call(&mut r, 2, 1, unlink()), Reply::Ok);
    assert_eq!(call(&mut r, 2, 1, unlink()), err(AisError::NotExist));
    let empty = Request::Unlink { name: Bytes::new() };
    assert_eq!(call(&mut r, 2, 1, empty), err(AisError::InvalidParam));
    let long = Request::Unlink {
        name: b(&"n".repeat(257)),
    };
    assert_eq!(call(&mut r, 2, 1, long), err(AisError::NameTooLong));
    let o = Request::Open {
        name: b("ck"),
        flags: OPEN_READ,
        attributes: None,
    };
    assert_eq!(call(&mut r, 2, 1, o), err(AisError::NotExist));
    assert_eq!(read1(&mut r, 1, 1, h, ""), data(&["old"]));
    assert_eq!(
        call(
            &mut r,
            1,
            1,
            Request::RetentionDurationSet {
                handle: h,
                duration: 1
            }
        ),
        err(AisError::BadOperation)
    );
    // A new create makes a new checkpoint.
    let h2 = rw_create(&mut r, 2, 1, "ck", 1);
    assert_eq!(read1(&mut r, 2, 1, h2, ""), data(&[""]));
    assert_eq!(list(&mut r, 2, 1).len(), 2);
    assert_eq!(call(&mut r, 1, 1, Request::Close { handle: h }), Reply::Ok);
    let l = list(&mut r, 2, 1);
    assert_eq!(l.len(), 1, "the last close deleted the unlinked one: {l:?}");
    assert!(!l[0].unlinked);
}

#[test]
fn retention_deletes_a_closed_checkpoint_unless_it_is_opened_again() {
    let mut r = ring_of(2);
    r.node(1).connect(1, 100, ID);
    r.node(2).connect(1, 100, ID);
    let a = Attributes {
        retention_duration: 10 * SEC,
        ..attrs(1)
    };
    let h = open(&mut r, 1, 1, "ck", OPEN_CREATE | OPEN_WRITE, Some(a));
    assert_eq!(call(&mut r, 1, 1, Request::Close { handle: h }), Reply::Ok);
    let tick = |r: &mut TestRing, at: u64| {
        for n in 1..=2 {
            r.node(n).core.tick(at);
        }
        r.flush();
    };
    tick(&mut r, 5 * SEC);
    assert_eq!(list(&mut r, 2, 1).len(), 1);
    // Opened again before the end: kept; closed again: a new period.
    let h = open(&mut r, 2, 1, "ck", OPEN_READ, None);
    tick(&mut r, 11 * SEC);
    assert_eq!(list(&mut r, 2, 1).len(), 1, "kept while open");
    assert_eq!(call(&mut r, 2, 1, Request::Close { handle: h }), Reply::Ok);
    tick(&mut r, 20 * SEC);
    assert_eq!(
        list(&mut r, 1, 1).len(),
        1,
        "10 s from the last close not passed"
    );
    tick(&mut r, 22 * SEC);
    assert!(list(&mut r, 1, 1).is_empty());
    assert!(list(&mut r, 2, 1).is_empty());
}

#[test]
fn sections_expire_at_their_time_and_iteration_chooses_by_it() {
    let mut r = ring_of(2);
    r.node(1).connect(1, 100, ID);
    let h = rw_create(&mut r, 1, 1, "ck", 8);
    for (id, at) in [("a", 5 * SEC), ("b", 50 * SEC), ("c", TIME_END)] {
        let c = Request::SectionCreate {
            handle: h,
            section: Some(b(id)),
            expiration_time: at,
            data: Bytes::new(),
        };
        assert!(matches!(call(&mut r, 1, 1, c), Reply::Service(_)));
    }
    let ids = |r: &mut TestRing, chosen: Chosen, t: u64| {
        let Reply::Service(Response::Iterator { iterator }) = call(
            r,
            1,
            1,
            Request::IterationInitialize {
                handle: h,
                chosen: chosen.code(),
                expiration_time: t,
            },
        ) else {
            panic!("no iterator")
        };
        let mut out = Vec::new();
        loop {
            match call(r, 1, 1, Request::IterationNext { iterator }) {
                Reply::Service(Response::Section(SectionDescriptor { id, .. })) => {
                    out.push(String::from_utf8_lossy(&id).into_owned())
                }
                Reply::Error(AisError::NoSections) => break,
                other => panic!("{other:?}"),
            }
        }
        assert_eq!(
            call(r, 1, 1, Request::IterationFinalize { iterator }),
            Reply::Ok
        );
        assert_eq!(
            call(r, 1, 1, Request::IterationNext { iterator }),
            err(AisError::BadHandle)
        );
        out
    };
    assert_eq!(ids(&mut r, Chosen::Any, 0), ["a", "b", "c"]);
    assert_eq!(ids(&mut r, Chosen::Forever, 0), ["c"]);
    assert_eq!(ids(&mut r, Chosen::LeqExpiration, 10 * SEC), ["a"]);
    assert_eq!(ids(&mut r, Chosen::GeqExpiration, 10 * SEC), ["b", "c"]);
    let bad = Request::IterationInitialize {
        handle: h,
        chosen: 9,
        expiration_time: 0,
    };
    assert_eq!(call(&mut r, 1, 1, bad), err(AisError::InvalidParam));
    // Only node 2's clock passes 5 s: it sends the expiry, every node applies it.
    r.node(2).core.tick(6 * SEC);
    r.flush();
    assert_eq!(ids(&mut r, Chosen::Any, 0), ["b", "c"]);
}

#[test]
fn synchronize_and_active_replica_follow_the_creation_flags() {
    let mut r = ring_of(2);
    r.node(1).connect(1, 100, ID);
    let all = rw_create(&mut r, 1, 1, "all", 1);
    assert_eq!(
        call(&mut r, 1, 1, Request::Synchronize { handle: all }),
        err(AisError::BadOperation)
    );
    assert_eq!(
        call(&mut r, 1, 1, Request::ActiveReplicaSet { handle: all }),
        err(AisError::BadOperation)
    );
    let active = Attributes {
        creation_flags: WR_ACTIVE_REPLICA | CHECKPOINT_COLLOCATED,
        ..attrs(1)
    };
    let h = open(
        &mut r,
        1,
        1,
        "active",
        OPEN_CREATE | OPEN_WRITE,
        Some(active),
    );
    assert_eq!(
        call(&mut r, 1, 1, Request::ActiveReplicaSet { handle: h }),
        Reply::Ok
    );
    assert_eq!(
        call(&mut r, 1, 1, Request::Synchronize { handle: h }),
        Reply::Ok
    );
    let (reply, cbs) = call_cb(
        &mut r,
        1,
        1,
        Request::SynchronizeAsync {
            handle: h,
            invocation: 9,
        },
    );
    assert_eq!(reply, Reply::Ok);
    assert_eq!(
        cbs,
        [Callback::Synchronize {
            invocation: 9,
            result: Ok(())
        }]
    );
    let (reply, cbs) = call_cb(
        &mut r,
        1,
        1,
        Request::OpenAsync {
            name: b("active"),
            flags: OPEN_READ,
            attributes: None,
            invocation: 4,
        },
    );
    assert_eq!(reply, Reply::Ok);
    assert!(matches!(
        cbs[..],
        [Callback::Open {
            invocation: 4,
            result: Ok(_)
        }]
    ));
}

#[test]
fn a_full_send_queue_and_a_missing_quorum_answer_try_again() {
    let mut r = ring_of(1);
    r.node(1).connect(1, 100, ID);
    let h = rw_create(&mut r, 1, 1, "ck", 1);
    r.node(1).refuse = true;
    let w = Request::Overwrite {
        handle: h,
        section: Bytes::new(),
        data: b("x"),
    };
    assert_eq!(call(&mut r, 1, 1, w.clone()), err(AisError::TryAgain));
    assert_eq!(
        call(&mut r, 1, 1, Request::Close { handle: h }),
        err(AisError::TryAgain)
    );
    r.node(1).refuse = false;
    // The handle survived the refused close.
    assert_eq!(call(&mut r, 1, 1, w), Reply::Ok);
    // Without quorum (one vote of three) and writes_need_quorum: refused; reads go on.
    let mut r = TestRing::new(1, || {
        vec![
            Box::new(Quorum::new(QuorumConfig {
                votes: 1,
                expected_votes: 3,
                two_node: false,
                wait_for_all: false,
            })) as Box<dyn Service + Send>,
            Box::new(Ckpt::new(CkptConfig {
                writes_need_quorum: true,
                ..CkptConfig::default()
            })),
        ]
    });
    r.flush();
    r.node(1).connect(1, 100, ID);
    let o = Request::Open {
        name: b("ck"),
        flags: OPEN_CREATE,
        attributes: Some(attrs(1)),
    };
    assert_eq!(call(&mut r, 1, 1, o), err(AisError::TryAgain));
    assert!(list(&mut r, 1, 1).is_empty());
}

#[test]
fn the_memory_limit_refuses_with_no_resources() {
    let mut r = TestRing::new(1, || {
        vec![Box::new(Ckpt::new(CkptConfig {
            max_memory: 10,
            ..CkptConfig::default()
        })) as Box<dyn Service + Send>]
    });
    r.flush();
    r.node(1).connect(1, 100, ID);
    let h = rw_create(&mut r, 1, 1, "ck", 1);
    let w = |d: &str| Request::Overwrite {
        handle: h,
        section: Bytes::new(),
        data: b(d),
    };
    assert_eq!(call(&mut r, 1, 1, w("0123456789")), Reply::Ok);
    assert_eq!(
        call(&mut r, 1, 1, w("0123456789a")),
        err(AisError::NoResources)
    );
}

#[test]
fn malformed_ring_messages_change_nothing_and_are_counted() {
    let mut r = ring_of(2);
    r.node(1).connect(1, 100, ID);
    rw_create(&mut r, 1, 1, "ck", 1);
    r.node(2).connect(1, 100, ID);
    let before = list(&mut r, 2, 1);
    let mut garbage = ring::encode(
        ID,
        &RingMessage::Summary {
            rep: 1,
            seq: 4,
            held: vec![],
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
            deleted: vec![],
        },
    )
    .to_vec();
    unknown[3] = 0xee;
    r.inject(2, Bytes::from(unknown));
    assert_eq!(list(&mut r, 2, 1), before);
    assert_eq!(r.node(2).core.core_counters().exec_malformed, 2);
}

/// Two partitions change one checkpoint, and each creates one under a new name; after the
/// heal every node holds the same merge: sections from the side that changed each last.
#[test]
fn after_a_partition_every_node_holds_the_same_merge() {
    let mut r = ring_of(3);
    for n in 1..=3 {
        r.node(n).connect(1, 100, ID);
    }
    let h1 = rw_create(&mut r, 1, 1, "ck", 8);
    section(&mut r, 1, 1, h1, "shared", "base");
    let h3 = open(&mut r, 3, 1, "ck", OPEN_READ | OPEN_WRITE, None);
    // {1} and {2, 3} apart.
    r.config(&[1], &[1]);
    r.flush();
    section(&mut r, 1, 1, h1, "left", "L");
    let ow = |h, d: &str| Request::Overwrite {
        handle: h,
        section: b("shared"),
        data: b(d),
    };
    assert_eq!(call(&mut r, 1, 1, ow(h1, "L1")), Reply::Ok);
    let x1 = rw_create(&mut r, 1, 1, "x", 1);
    r.config(&[2, 3], &[2, 3]);
    r.flush();
    section(&mut r, 3, 1, h3, "right", "R");
    assert_eq!(call(&mut r, 3, 1, ow(h3, "R1")), Reply::Ok);
    assert_eq!(call(&mut r, 3, 1, ow(h3, "R2")), Reply::Ok);
    let x3 = rw_create(&mut r, 3, 1, "x", 1);
    // Heal.
    r.config(&[1, 2, 3], &[1, 2, 3]);
    r.flush();
    let l = list(&mut r, 1, 1);
    assert_eq!(l, list(&mut r, 2, 1));
    assert_eq!(l, list(&mut r, 3, 1));
    for n in [1, 3] {
        let h = if n == 1 { h1 } else { h3 };
        assert_eq!(read1(&mut r, n, 1, h, "left"), data(&["L"]));
        assert_eq!(read1(&mut r, n, 1, h, "right"), data(&["R"]));
        // {2, 3} changed it last (two overwrites against one).
        assert_eq!(read1(&mut r, n, 1, h, "shared"), data(&["R2"]));
    }
    // "x" was created on both sides: the older creation ({1}'s ring came first) keeps the
    // name, the other is unlinked and still open at node 3.
    let xs: Vec<_> = l.iter().filter(|c| &c.name[..] == b"x").collect();
    assert_eq!(xs.len(), 2);
    assert_eq!(xs.iter().filter(|c| c.unlinked).count(), 1);
    let _ = (x1, x3);
    assert_eq!(r.node(1).core.core_counters().syncs_completed.min(1), 1);
}

/// A close refused by a full queue after its connection went: the executive sends it itself,
/// so the open is not counted forever.
#[test]
fn a_refused_close_of_a_departed_connection_is_sent_again() {
    let mut r = ring_of(2);
    r.node(1).connect(1, 100, ID);
    r.node(2).connect(1, 100, ID);
    let h = rw_create(&mut r, 1, 1, "ck", 1);
    assert_eq!(list(&mut r, 2, 1)[0].opens, 1);
    r.node(1)
        .core
        .request_value(1, 9, &Request::Close { handle: h });
    r.node(1).core.disconnected(1);
    r.node(1).refuse = true;
    r.flush();
    r.node(1).refuse = false;
    r.node(1).core.tick(1);
    r.flush();
    assert_eq!(list(&mut r, 2, 1)[0].opens, 0);
}

/// A change sent before a membership change and delivered after it is refused at every node
/// alike, its client told TRY_AGAIN; requests made during the sync wait for it and then go
/// through.
#[test]
fn a_change_that_crosses_a_membership_change_answers_try_again() {
    let mut r = ring_of(2);
    r.node(1).connect(1, 100, ID);
    r.node(2).connect(1, 100, ID);
    let h = rw_create(&mut r, 1, 1, "ck", 1);
    let w = |d: &str| Request::Overwrite {
        handle: h,
        section: Bytes::new(),
        data: b(d),
    };
    r.node(1).core.request_value(1, 50, &w("lost"));
    r.node(1).run();
    r.config(&[1, 2], &[1, 2]);
    // Asked while the new ring synchronises: held, then done.
    r.node(1).core.request_value(1, 51, &w("kept"));
    r.flush();
    let replies = r.node(1).replies::<Response>();
    let answer = |id| {
        replies
            .iter()
            .find(|(i, _)| *i == id)
            .map(|(_, a)| a.clone())
    };
    assert_eq!(answer(50), Some(err(AisError::TryAgain)));
    assert_eq!(answer(51), Some(Reply::Ok));
    let h2 = open(&mut r, 2, 1, "ck", OPEN_READ, None);
    assert_eq!(read1(&mut r, 2, 1, h2, ""), data(&["kept"]));
}

/// Before its first sync a node knows nothing of the cluster's checkpoints: a request waits
/// for the sync instead of being answered from the empty replicas.
#[test]
fn requests_wait_for_the_first_sync() {
    let mut n = crate::exec::testkit::TestNode::new(
        1,
        vec![Box::new(Ckpt::new(CkptConfig::default())) as Box<dyn Service + Send>],
    );
    n.connect(1, 100, ID);
    n.take();
    n.core.request_value(1, 5, &Request::List { start: 0 });
    assert!(
        n.replies::<Response>().is_empty(),
        "answered before any sync"
    );
    assert_eq!(n.core.core_counters().requests_held, 1);
}

/// A list of more checkpoints than one answer carries comes in pages that cover every one
/// once, in order.
#[test]
fn a_long_list_comes_in_pages() {
    let mut r = ring_of(1);
    r.node(1).connect(1, 100, ID);
    let long = "x".repeat(250);
    for i in 0..800 {
        rw_create(&mut r, 1, 1, &format!("{long}{i:04}"), 1);
    }
    let mut names = Vec::new();
    let mut start = 0;
    let mut pages = 0;
    loop {
        let Reply::Service(Response::List { items, next }) =
            call(&mut r, 1, 1, Request::List { start })
        else {
            panic!("no list")
        };
        assert!(
            ais_proto::ipc::Encoded::reply(
                77,
                &Reply::Service(Response::List {
                    items: items.clone(),
                    next
                })
            )
            .len()
                <= ais_proto::ipc::MAX_PACKET
        );
        pages += 1;
        names.extend(items.into_iter().map(|c| c.name));
        match next {
            Some(n) => start = n,
            None => break,
        }
    }
    assert!(pages > 1, "800 long names fit one answer?");
    let want: Vec<Bytes> = (0..800).map(|i| b(&format!("{long}{i:04}"))).collect();
    assert_eq!(names, want);
}

fn describe(r: &mut TestRing, node: u32, name: &str, start: u32) -> Reply<Response> {
    call(
        r,
        node,
        1,
        Request::Describe {
            name: b(name),
            start,
        },
    )
}

fn peek(r: &mut TestRing, node: u32, name: &str, section: &str, offset: u64) -> Reply<Response> {
    call(
        r,
        node,
        1,
        Request::Peek {
            name: b(name),
            section: b(section),
            offset,
            size: u64::MAX,
        },
    )
}

#[test]
fn describe_and_peek_look_without_opening() {
    let mut r = ring_of(2);
    r.node(1).connect(1, 100, ID);
    r.node(2).connect(1, 100, ID);
    let a = Attributes {
        retention_duration: 10 * SEC,
        ..attrs(4)
    };
    let h = open(&mut r, 1, 1, "ck", OPEN_CREATE | OPEN_WRITE, Some(a));
    section(&mut r, 1, 1, h, "s1", "hello");
    section(&mut r, 1, 1, h, "s0", "");
    assert_eq!(call(&mut r, 1, 1, Request::Close { handle: h }), Reply::Ok);
    let tick = |r: &mut TestRing, at: u64| {
        for n in 1..=2 {
            r.node(n).core.tick(at);
        }
        r.flush();
    };
    tick(&mut r, 5 * SEC);
    let Reply::Service(Response::Described {
        info,
        sections,
        next,
    }) = describe(&mut r, 2, "ck", 0)
    else {
        panic!("no description")
    };
    assert_eq!((info.name, info.opens, next), (b("ck"), 0, None));
    assert_eq!(info.status.sections, 2);
    let ids: Vec<Bytes> = sections.iter().map(|d| d.id.clone()).collect();
    assert_eq!(ids, [b("s0"), b("s1")]);
    assert_eq!(sections[1].size, 5);
    assert_eq!(peek(&mut r, 2, "ck", "s1", 0), data(&["hello"]));
    assert_eq!(peek(&mut r, 2, "ck", "s1", 3), data(&["lo"]));
    assert_eq!(peek(&mut r, 2, "ck", "s1", 5), data(&[""]));
    assert_eq!(peek(&mut r, 2, "ck", "s1", 6), err(AisError::InvalidParam));
    assert_eq!(peek(&mut r, 2, "ck", "s9", 0), err(AisError::NotExist));
    assert_eq!(peek(&mut r, 2, "nope", "s1", 0), err(AisError::NotExist));
    assert_eq!(describe(&mut r, 1, "nope", 0), err(AisError::NotExist));
    // Looking did not open it: the retention period from the close at 0 still ends at 10 s.
    tick(&mut r, 11 * SEC);
    assert!(list(&mut r, 1, 1).is_empty());
    assert_eq!(describe(&mut r, 2, "ck", 0), err(AisError::NotExist));
}

#[test]
fn a_long_description_comes_in_pages() {
    let mut r = ring_of(1);
    r.node(1).connect(1, 100, ID);
    let n = 6000;
    let h = rw_create(&mut r, 1, 1, "ck", n);
    for i in 0..n {
        section(&mut r, 1, 1, h, &format!("section-{i:07}"), "");
    }
    let mut ids = Vec::new();
    let mut start = 0;
    let mut pages = 0;
    loop {
        let reply = describe(&mut r, 1, "ck", start);
        assert!(ais_proto::ipc::Encoded::reply(77, &reply).len() <= ais_proto::ipc::MAX_PACKET);
        let Reply::Service(Response::Described { sections, next, .. }) = reply else {
            panic!("no description")
        };
        pages += 1;
        ids.extend(sections.into_iter().map(|d| d.id));
        match next {
            Some(n) => start = n,
            None => break,
        }
    }
    assert!(pages > 1, "{n} sections fit one answer?");
    let want: Vec<Bytes> = (0..n).map(|i| b(&format!("section-{i:07}"))).collect();
    assert_eq!(ids, want);
}
