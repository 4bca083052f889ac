//! CKPT through the client library and `aisctl`, against real executives: a checkpoint
//! created and written on one node is read on the other; a section larger than one IPC packet
//! is written, created, overwritten and read back whole on both nodes, and on a node that
//! joins afterwards; the asynchronous open
//! and synchronize answer through dispatch; the specification's refusals (`BAD_HANDLE` after
//! close, `NOT_EXIST`, `NAME_TOO_LONG` from the library and from the executive, `ACCESS`
//! through a read-only open, `EXIST` for other attributes); and every `aisctl ckpt` verb run as
//! a process, its output and exit status checked.
//!
//! Assumes: loopback only, no root, free UDP ports from the kernel, a loaded 2-core machine
//! (every wait is generous). The processes are killed when a test ends, whatever happens.

mod common;

use std::process::Command;
use std::time::Duration;

use ais_client::ckpt::{
    Attributes, CheckpointHandle, Chosen, Ckpt, CkptEvent, MAX_NAME, OPEN_CREATE, OPEN_READ,
    OPEN_WRITE, ReadElement, TIME_END, WR_ACTIVE_REPLICA, WR_ALL_REPLICAS, WriteElement,
};
use ais_client::{AisError, Connection, Error};
use ais_proto::ckpt::{CkptProtocol, Request, Response};
use ais_proto::ipc::{MAX_PAYLOAD, Reply};
use bytes::Bytes;
use common::cluster::Cluster;

const LONG: Duration = Duration::from_secs(20);

/// Two nodes on loopback, both members.
fn pair(name: &str) -> Cluster {
    let mut c = Cluster::loopback(name, 2, "");
    c.start_all();
    for i in 0..2 {
        c.wait_ring(i, &[1, 2], LONG);
    }
    c
}

/// A CKPT client of node `i` (retrying the connect while the executive starts).
fn ckpt(c: &Cluster, i: usize) -> Ckpt {
    common::ckpt::connect(c, i, LONG)
}

/// Runs `op` again while it answers TRY_AGAIN (a membership change settling), for `LONG`.
fn again<T>(op: impl FnMut() -> Result<T, Error>) -> Result<T, Error> {
    common::ckpt::again(LONG, op)
}

fn attributes(max_sections: u32, max_section_size: u64) -> Attributes {
    Attributes {
        creation_flags: WR_ALL_REPLICAS,
        checkpoint_size: u64::from(max_sections) * max_section_size,
        retention_duration: TIME_END,
        max_sections,
        max_section_size,
        max_section_id_size: 64,
    }
}

fn pattern(len: usize, seed: u8) -> Vec<u8> {
    (0..len)
        .map(|i| (i % 251) as u8 ^ seed.wrapping_mul(37))
        .collect()
}

fn b(s: &[u8]) -> Bytes {
    Bytes::copy_from_slice(s)
}

/// The whole of section `id`.
fn read_all(k: &mut Ckpt, h: CheckpointHandle, id: &[u8]) -> Bytes {
    let mut got = k
        .read(
            h,
            &[ReadElement {
                section: b(id),
                offset: 0,
                size: u64::MAX,
            }],
        )
        .unwrap_or_else(|e| panic!("read {:?}: {e}", String::from_utf8_lossy(id)));
    got.pop().expect("one element")
}

/// Every section of `h`: (id, size).
fn sections(k: &mut Ckpt, h: CheckpointHandle) -> Vec<(Bytes, u64)> {
    let it = k
        .section_iteration_initialize(h, Chosen::Any, 0)
        .expect("iteration");
    let mut all = Vec::new();
    while let Some(d) = k.section_iteration_next(it).expect("next section") {
        all.push((d.id, d.size));
    }
    k.section_iteration_finalize(it).expect("finalize");
    all.sort();
    all
}

#[test]
fn written_on_one_node_read_on_the_other_large_sections_whole() {
    let c = pair("ckpt-pair");
    let mut k1 = ckpt(&c, 0);
    let mut k2 = ckpt(&c, 1);
    let flags = OPEN_CREATE | OPEN_WRITE | OPEN_READ;
    let orders = Attributes {
        creation_flags: WR_ACTIVE_REPLICA,
        ..attributes(8, 4 << 20)
    };
    let h1 = again(|| k1.open(b"orders", flags, Some(orders))).expect("create");
    let id = again(|| k1.section_create(h1, Some(b"small"), TIME_END, b"hello"))
        .expect("section create");
    assert_eq!(&id[..], b"small");
    again(|| {
        k1.write(
            h1,
            &[WriteElement {
                section: b(b"small"),
                offset: 5,
                data: b(b", world"),
            }],
        )
        .map_err(Error::from)
    })
    .expect("write");
    again(|| k1.synchronize(h1)).expect("synchronize");

    // Three packets and a half, through each path that cuts data.
    let big = pattern(3 * MAX_PAYLOAD + MAX_PAYLOAD / 2, 1);
    let created = again(|| k1.section_create(h1, Some(b"created"), TIME_END, &big))
        .expect("large section create");
    assert_eq!(&created[..], b"created");
    again(|| k1.section_create(h1, Some(b"written"), TIME_END, b"")).expect("section create");
    let written = pattern(2 * MAX_PAYLOAD + 17, 2);
    again(|| {
        k1.write(
            h1,
            &[
                WriteElement {
                    section: b(b"written"),
                    offset: 0,
                    data: Bytes::from(written.clone()),
                },
                WriteElement {
                    section: b(b"small"),
                    offset: 0,
                    data: b(b"J"),
                },
            ],
        )
        .map_err(Error::from)
    })
    .expect("large write");
    let over = pattern(MAX_PAYLOAD + MAX_PAYLOAD / 3, 3);
    again(|| k1.section_overwrite(h1, b"created", &over)).expect("large overwrite");
    again(|| k1.synchronize(h1)).expect("synchronize");

    let h2 = again(|| k2.open(b"orders", OPEN_READ, None)).expect("open on node 2");
    for (k, h, node) in [(&mut k1, h1, 1), (&mut k2, h2, 2)] {
        assert_eq!(
            &read_all(k, h, b"small")[..],
            b"Jello, world",
            "node {node}"
        );
        assert!(
            read_all(k, h, b"created") == over,
            "node {node}: overwrite whole"
        );
        assert!(
            read_all(k, h, b"written") == written,
            "node {node}: write whole"
        );
        // Several elements in one call, one of them large and in the middle.
        let parts = k
            .read(
                h,
                &[
                    ReadElement {
                        section: b(b"small"),
                        offset: 1,
                        size: 4,
                    },
                    ReadElement {
                        section: b(b"written"),
                        offset: 100,
                        size: (MAX_PAYLOAD + 1000) as u64,
                    },
                    ReadElement {
                        section: b(b"small"),
                        offset: 7,
                        size: 100,
                    },
                ],
            )
            .expect("vector read");
        assert_eq!(&parts[0][..], b"ello");
        assert!(parts[1] == written[100..100 + MAX_PAYLOAD + 1000]);
        assert_eq!(&parts[2][..], b"world");
        assert_eq!(
            sections(k, h),
            [
                (b(b"created"), over.len() as u64),
                (b(b"small"), 12),
                (b(b"written"), written.len() as u64),
            ],
            "node {node}"
        );
        let s = k.status_get(h).expect("status");
        assert_eq!(s.sections, 3);
        assert_eq!(s.memory_used, (over.len() + 12 + written.len()) as u64);
        assert_eq!(s.attributes, orders);
    }
    let list = k2.list().expect("list");
    let info = list
        .iter()
        .find(|i| &i.name[..] == b"orders")
        .expect("listed");
    assert_eq!((info.opens, info.unlinked), (2, false), "{info:?}");

    // The asynchronous calls answer through dispatch.
    again(|| k2.open_async(b"orders", OPEN_READ, None, 77)).expect("open async");
    again(|| k1.synchronize_async(h1, 78)).expect("synchronize async");
    let open = k2.dispatch(Some(LONG)).expect("dispatch");
    let Some(CkptEvent::Open {
        invocation: 77,
        result: Ok(h3),
    }) = open
    else {
        panic!("{open:?}")
    };
    assert_ne!(h3, h2);
    assert_eq!(&read_all(&mut k2, h3, b"small")[..], b"Jello, world");
    assert_eq!(
        k1.dispatch(Some(LONG)).expect("dispatch"),
        Some(CkptEvent::Synchronize {
            invocation: 78,
            result: Ok(())
        })
    );
    again(|| k2.open_async(b"missing", OPEN_READ, None, 79)).expect("open async");
    assert_eq!(
        k2.dispatch(Some(LONG)).expect("dispatch"),
        Some(CkptEvent::Open {
            invocation: 79,
            result: Err(AisError::NotExist)
        })
    );
}

#[test]
fn a_node_that_joins_later_reads_what_was_written_before() {
    let mut c = Cluster::loopback("ckpt-join", 2, "");
    c.start(0);
    c.wait_ring(0, &[1], LONG);
    let mut k1 = ckpt(&c, 0);
    let flags = OPEN_CREATE | OPEN_WRITE | OPEN_READ;
    let h1 = again(|| k1.open(b"early", flags, Some(attributes(4, 4 << 20)))).expect("create");
    let big = pattern(2 * MAX_PAYLOAD + 3, 5);
    again(|| k1.section_create(h1, Some(b"big"), TIME_END, &big)).expect("section create");
    c.start(1);
    for i in 0..2 {
        c.wait_ring(i, &[1, 2], LONG);
    }
    let mut k2 = ckpt(&c, 1);
    let h2 = again(|| k2.open(b"early", OPEN_READ, None)).expect("open on the new node");
    assert!(read_all(&mut k2, h2, b"big") == big, "synced whole");
    let info = k2.list().expect("list");
    assert_eq!(info.len(), 1, "{info:?}");
    assert_eq!(info[0].opens, 2, "one open at each node: {info:?}");
}

#[test]
fn refusals_are_the_specifications() {
    let c = pair("ckpt-errors");
    let mut k = ckpt(&c, 0);
    let ais = |e: Error| e.ais_error();

    // NOT_EXIST: no such checkpoint without CREATE; no such section.
    assert_eq!(
        k.open(b"nothing", OPEN_READ, None).map_err(ais),
        Err(Some(AisError::NotExist))
    );
    assert_eq!(
        k.unlink(b"nothing").map_err(ais),
        Err(Some(AisError::NotExist))
    );
    let flags = OPEN_CREATE | OPEN_WRITE | OPEN_READ;
    let h = again(|| k.open(b"errs", flags, Some(attributes(4, 1024)))).expect("create");
    let err = k
        .write(
            h,
            &[WriteElement {
                section: b(b"ghost"),
                offset: 0,
                data: b(b"x"),
            }],
        )
        .unwrap_err();
    assert_eq!(
        (err.index(), err.ais_error()),
        (Some(0), Some(AisError::NotExist))
    );
    let err = k
        .read(
            h,
            &[ReadElement {
                section: b(b"ghost"),
                offset: 0,
                size: 1,
            }],
        )
        .unwrap_err();
    assert_eq!(
        (err.index(), err.ais_error()),
        (Some(0), Some(AisError::NotExist))
    );

    // NAME_TOO_LONG: from the library without a round trip, and from the executive.
    let long = vec![b'n'; MAX_NAME + 1];
    assert_eq!(
        k.open(&long, flags, Some(attributes(4, 1024))).map_err(ais),
        Err(Some(AisError::NameTooLong))
    );
    let mut raw: Connection<CkptProtocol> =
        Connection::connect(&c.node(0).socket).expect("raw connection");
    let answer = raw.call(Request::Open {
        name: Bytes::from(long),
        flags: OPEN_READ,
        attributes: None,
    });
    assert_eq!(
        answer.map_err(ais).err(),
        Some(Some(AisError::NameTooLong)),
        "the executive checks the name too"
    );
    let answer = raw.call(Request::Open {
        name: Bytes::from(vec![b'n'; MAX_NAME]),
        flags: OPEN_READ,
        attributes: None,
    });
    assert_eq!(
        answer.map_err(ais).err(),
        Some(Some(AisError::NotExist)),
        "a name of MAX_NAME bytes is a name"
    );

    // EXIST: created again with other attributes (the retention may differ).
    assert_eq!(
        k.open(b"errs", flags, Some(attributes(5, 1024)))
            .map_err(ais),
        Err(Some(AisError::Exist))
    );
    let mut shorter = attributes(4, 1024);
    shorter.retention_duration = 1_000_000_000;
    let again_h = again(|| k.open(b"errs", flags, Some(shorter))).expect("same shape");
    k.close(again_h).expect("close");

    // BAD_OPERATION: synchronize is for the active-replica write modes.
    assert_eq!(
        k.synchronize(h).map_err(ais),
        Err(Some(AisError::BadOperation))
    );

    // ACCESS: writing through a read-only open.
    again(|| k.section_create(h, Some(b"s"), TIME_END, b"data")).expect("section create");
    let ro = again(|| k.open(b"errs", OPEN_READ, None)).expect("read-only open");
    let err = k
        .write(
            ro,
            &[WriteElement {
                section: b(b"s"),
                offset: 0,
                data: b(b"x"),
            }],
        )
        .unwrap_err();
    assert_eq!(err.ais_error(), Some(AisError::Access), "{err}");
    assert_eq!(
        k.section_overwrite(ro, b"s", b"x").map_err(ais),
        Err(Some(AisError::Access))
    );
    assert_eq!(
        k.section_create(ro, Some(b"t"), TIME_END, b"x")
            .map_err(ais),
        Err(Some(AisError::Access))
    );
    let wo = again(|| k.open(b"errs", OPEN_WRITE, None)).expect("write-only open");
    let err = k
        .read(
            wo,
            &[ReadElement {
                section: b(b"s"),
                offset: 0,
                size: 4,
            }],
        )
        .unwrap_err();
    assert_eq!(err.ais_error(), Some(AisError::Access), "{err}");
    assert_eq!(&read_all(&mut k, ro, b"s")[..], b"data", "nothing written");

    // BAD_HANDLE after close.
    k.close(ro).expect("close");
    assert_eq!(k.close(ro).map_err(ais), Err(Some(AisError::BadHandle)));
    assert_eq!(
        k.status_get(ro).map_err(ais),
        Err(Some(AisError::BadHandle))
    );
    let err = k
        .read(
            ro,
            &[ReadElement {
                section: b(b"s"),
                offset: 0,
                size: 1,
            }],
        )
        .unwrap_err();
    assert_eq!(
        (err.index(), err.ais_error()),
        (None, Some(AisError::BadHandle))
    );
    let it = k
        .section_iteration_initialize(h, Chosen::Any, 0)
        .expect("iteration");
    k.section_iteration_finalize(it).expect("finalize");
    assert_eq!(
        k.section_iteration_next(it).map_err(ais),
        Err(Some(AisError::BadHandle))
    );

    // Past the end of a section: INVALID_PARAM, naming the element.
    let err = k
        .read(
            h,
            &[
                ReadElement {
                    section: b(b"s"),
                    offset: 0,
                    size: 1,
                },
                ReadElement {
                    section: b(b"s"),
                    offset: 5,
                    size: 1,
                },
            ],
        )
        .unwrap_err();
    assert_eq!(
        (err.index(), err.ais_error()),
        (Some(1), Some(AisError::InvalidParam))
    );
    // At the end: nothing.
    let parts = k
        .read(
            h,
            &[ReadElement {
                section: b(b"s"),
                offset: 4,
                size: 10,
            }],
        )
        .expect("read at the end");
    assert!(parts[0].is_empty());

    // Past the maximum section size in the second request of a cut write: the caller's
    // element is named, and what the first request wrote stays (documented: not atomic).
    // A cut section creation that fails so deletes its section again.
    let limit = 300 * 1024;
    let hb = again(|| k.open(b"bounded", flags, Some(attributes(4, limit)))).expect("create");
    again(|| k.section_create(hb, Some(b"s"), TIME_END, b"")).expect("section create");
    let too_big = pattern(400 * 1024, 4);
    let err = k
        .write(
            hb,
            &[
                WriteElement {
                    section: b(b"s"),
                    offset: 0,
                    data: b(b"head"),
                },
                WriteElement {
                    section: b(b"s"),
                    offset: 0,
                    data: Bytes::from(too_big.clone()),
                },
            ],
        )
        .unwrap_err();
    assert_eq!(
        (err.index(), err.ais_error()),
        (Some(1), Some(AisError::InvalidParam)),
        "{err}"
    );
    let kept = read_all(&mut k, hb, b"s");
    assert!(
        !kept.is_empty() && kept.len() < limit as usize && kept == too_big[..kept.len()],
        "the first request's part stays: {} bytes",
        kept.len()
    );
    let err = k
        .section_create(hb, Some(b"t"), TIME_END, &too_big)
        .unwrap_err();
    assert_eq!(err.ais_error(), Some(AisError::InvalidParam), "{err}");
    assert_eq!(
        sections(&mut k, hb),
        [(b(b"s"), kept.len() as u64)],
        "the cut creation's section is gone again"
    );
    k.close(hb).expect("close");
    k.unlink(b"bounded").expect("unlink");

    // Unlinked: the name is free at once, the open handles still work.
    k.unlink(b"errs").expect("unlink");
    assert_eq!(
        k.open(b"errs", OPEN_READ, None).map_err(ais),
        Err(Some(AisError::NotExist))
    );
    assert_eq!(&read_all(&mut k, h, b"s")[..], b"data");
    k.close(wo).expect("close");
    k.close(h).expect("close");
    let raw_list = raw.call(Request::List { start: 0 }).expect("list");
    let Reply::Service(Response::List { items: list, .. }) = raw_list else {
        panic!("{raw_list:?}")
    };
    assert!(
        list.iter().all(|i| &i.name[..] != b"errs"),
        "deleted at its last close: {list:?}"
    );
}

/// Runs aisctl against node `i`: (exit status, stdout, stderr).
fn aisctl(c: &Cluster, i: usize, args: &[&str]) -> (i32, Vec<u8>, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_aisctl"))
        .arg("--socket")
        .arg(&c.node(i).socket)
        .args(args)
        .output()
        .expect("run aisctl");
    (
        out.status.code().unwrap_or(-1),
        out.stdout,
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// Runs aisctl, asserts it succeeds and returns its standard output as text.
fn aisctl_ok(c: &Cluster, i: usize, args: &[&str]) -> String {
    let (code, out, err) = aisctl(c, i, args);
    let out = String::from_utf8_lossy(&out).into_owned();
    assert_eq!(code, 0, "aisctl {args:?}:\n{out}{err}");
    out
}

/// Runs aisctl, asserts it fails and returns its error output.
fn aisctl_fails(c: &Cluster, i: usize, args: &[&str]) -> String {
    let (code, out, err) = aisctl(c, i, args);
    assert_ne!(code, 0, "aisctl {args:?} succeeded:\n{out:?}");
    assert!(err.starts_with("aisctl: "), "{err}");
    err
}

#[test]
fn every_aisctl_ckpt_verb() {
    let c = pair("ckpt-aisctl");
    assert_eq!(aisctl_ok(&c, 0, &["ckpt", "ls"]).trim(), "no checkpoints");

    // Without --create nothing is created.
    let err = aisctl_fails(&c, 0, &["ckpt", "write", "app", "--data", "v=1"]);
    assert!(
        err.contains("checkpoint 'app' does not exist (SA_AIS_ERR_NOT_EXIST)"),
        "{err}"
    );
    let out = aisctl_ok(
        &c,
        0,
        &["ckpt", "write", "app", "--create", "--data", "v=1"],
    );
    assert!(
        out.contains("created checkpoint 'app': WR_ALL_REPLICAS, 1 section(s)"),
        "{out}"
    );
    assert!(
        out.contains("wrote 3 bytes at offset 0 of the default section"),
        "{out}"
    );
    // Read on the other node, raw and as a hex dump.
    let (code, raw, err) = aisctl(&c, 1, &["ckpt", "read", "app"]);
    assert_eq!((code, &raw[..]), (0, &b"v=1"[..]), "{err}");
    aisctl_ok(
        &c,
        1,
        &["ckpt", "write", "app", "--data", "2", "--offset", "2"],
    );
    let hex = aisctl_ok(&c, 0, &["ckpt", "read", "app", "--hex"]);
    assert_eq!(
        hex,
        format!("00000000  76 3d 32{}|v=2|\n00000003\n", " ".repeat(42))
    );
    let (_, raw, _) = aisctl(
        &c,
        0,
        &["ckpt", "read", "app", "--offset", "1", "--size", "1"],
    );
    assert_eq!(&raw[..], b"=");
    // A checkpoint of one section has no named ones.
    let err = aisctl_fails(&c, 0, &["ckpt", "read", "app", "--section", "x"]);
    assert!(err.contains("has no section 'x'"), "{err}");

    // Sections: created on demand with --create; binary ids shown in hex.
    let err = aisctl_fails(
        &c,
        0,
        &[
            "ckpt",
            "write",
            "cfg",
            "--create",
            "--section",
            "a",
            "--data",
            "",
        ],
    );
    assert!(err.contains("nothing to write"), "{err}");
    let out = aisctl_ok(
        &c,
        0,
        &[
            "ckpt",
            "write",
            "cfg",
            "--create",
            "--section",
            "a",
            "--data",
            "alpha",
        ],
    );
    assert!(
        out.contains("64 section(s) of at most 1048576 bytes"),
        "{out}"
    );
    assert!(
        out.contains("created section 'a' of checkpoint 'cfg'"),
        "{out}"
    );
    let file = std::env::temp_dir().join(format!("ckpt-aisctl-{}.bin", std::process::id()));
    let big = pattern(300 * 1024, 9);
    std::fs::write(&file, &big).expect("data file");
    let out = aisctl_ok(
        &c,
        1,
        &[
            "ckpt",
            "write",
            "cfg",
            "--create",
            "--section-hex",
            "0x00ff",
            "--file",
            file.to_str().expect("utf-8 path"),
            "--overwrite",
        ],
    );
    let _ = std::fs::remove_file(&file);
    assert!(out.contains("created section '0x00ff'"), "{out}");
    let (code, raw, err) = aisctl(&c, 0, &["ckpt", "read", "cfg", "--section-hex", "00ff"]);
    assert_eq!(code, 0, "{err}");
    assert!(raw == big, "300 KiB back whole through aisctl");
    let err = aisctl_fails(&c, 0, &["ckpt", "read", "cfg"]);
    assert!(err.contains("has no default section"), "{err}");
    assert!(err.contains("(SA_AIS_ERR_NOT_EXIST)"), "{err}");
    let err = aisctl_fails(
        &c,
        0,
        &["ckpt", "write", "cfg", "--section", "b", "--data", "x"],
    );
    assert!(
        err.contains("has no section 'b' (SA_AIS_ERR_NOT_EXIST); add --create to create it"),
        "{err}"
    );

    // ls and show, as text and JSON. Each `aisctl` above opened its checkpoint and exited:
    // its executive closes those opens through the ring when it notices the connection gone,
    // so node 2 may list the last one (made at node 1) still open for a moment: wait for it.
    let deadline = std::time::Instant::now() + LONG;
    let ls = loop {
        let ls = aisctl_ok(&c, 1, &["ckpt", "ls"]);
        let all_closed = ls
            .lines()
            .skip(1)
            .all(|l| l.split_whitespace().nth(4) == Some("0"));
        if all_closed || std::time::Instant::now() > deadline {
            break ls;
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let lines: Vec<&str> = ls.lines().collect();
    assert_eq!(lines.len(), 3, "{ls}");
    assert!(lines[0].starts_with("NAME"), "{ls}");
    let app: Vec<&str> = lines[1].split_whitespace().collect();
    assert_eq!(app[0], "app", "{ls}");
    assert_eq!(app[2..], ["1/1", "3", "0", "no", "forever"], "{ls}");
    let cfg: Vec<&str> = lines[2].split_whitespace().collect();
    assert_eq!(cfg[0], "cfg", "{ls}");
    assert_eq!(
        cfg[2..],
        ["2/64", &(big.len() + 5).to_string(), "0", "no", "forever"],
        "{ls}"
    );
    let json: serde_json::Value =
        serde_json::from_str(&aisctl_ok(&c, 0, &["ckpt", "ls", "--json"])).expect("JSON");
    let cfg_json = json
        .as_array()
        .expect("an array")
        .iter()
        .find(|v| v["name"] == "cfg")
        .expect("cfg listed");
    assert_eq!(cfg_json["sections"], 2);
    assert_eq!(cfg_json["max_sections"], 64);
    assert_eq!(cfg_json["memory_used"], big.len() + 5);
    assert_eq!(cfg_json["retention_ns"], serde_json::Value::Null);
    assert_eq!(
        cfg_json["creation_flags"],
        serde_json::json!(["WR_ALL_REPLICAS"])
    );
    assert_eq!(cfg_json["id"], cfg[1]);

    let show = aisctl_ok(&c, 0, &["ckpt", "show", "cfg"]);
    for want in [
        "checkpoint        cfg",
        "creation flags    WR_ALL_REPLICAS",
        "retention         forever",
        "sections          2 of 64, each at most 1048576 bytes, ids at most 256 bytes",
    ] {
        assert!(show.contains(want), "{want:?} in\n{show}");
    }
    let rows: Vec<Vec<&str>> = show
        .lines()
        .skip_while(|l| !l.trim_start().starts_with("ID"))
        .skip(1)
        .map(|l| l.split_whitespace().collect())
        .collect();
    assert_eq!(rows.len(), 2, "{show}");
    assert_eq!(
        rows[0][..3],
        ["0x00ff", &big.len().to_string(), "never"],
        "{show}"
    );
    assert_eq!(rows[1][..3], ["a", "5", "never"], "{show}");
    assert_eq!(rows[1].last(), Some(&"valid"), "{show}");
    let show: serde_json::Value =
        serde_json::from_str(&aisctl_ok(&c, 1, &["ckpt", "show", "app", "--json"])).expect("JSON");
    assert_eq!(show["max_sections"], 1);
    assert_eq!(show["opens"], 0);
    let list = show["section_list"].as_array().expect("sections");
    assert_eq!(list.len(), 1, "{show}");
    assert_eq!(list[0]["id"], serde_json::Value::Null);
    assert_eq!(list[0]["id_hex"], "");
    assert_eq!(list[0]["size"], 3);
    assert_eq!(list[0]["expiration_ns"], serde_json::Value::Null);
    let err = aisctl_fails(&c, 0, &["ckpt", "show", "nothing"]);
    assert!(
        err.contains("checkpoint 'nothing' does not exist (SA_AIS_ERR_NOT_EXIST)"),
        "{err}"
    );

    // Names too long are refused before anything is asked.
    let long = "n".repeat(MAX_NAME + 1);
    let err = aisctl_fails(&c, 0, &["ckpt", "read", &long]);
    assert!(
        err.contains("longer than the 256 allowed (SA_AIS_ERR_NAME_TOO_LONG)"),
        "{err}"
    );

    // unlink: gone from ls; a second unlink says it does not exist.
    let out = aisctl_ok(&c, 0, &["ckpt", "unlink", "app"]);
    assert!(out.contains("unlinked checkpoint 'app'"), "{out}");
    let err = aisctl_fails(&c, 1, &["ckpt", "unlink", "app"]);
    assert!(
        err.contains("checkpoint 'app' does not exist (SA_AIS_ERR_NOT_EXIST)"),
        "{err}"
    );
    let err = aisctl_fails(&c, 1, &["ckpt", "read", "app"]);
    assert!(err.contains("does not exist"), "{err}");
    aisctl_ok(&c, 1, &["ckpt", "unlink", "cfg"]);
    assert_eq!(aisctl_ok(&c, 1, &["ckpt", "ls"]).trim(), "no checkpoints");
}
