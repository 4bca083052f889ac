//! MSG through the client library and `aisctl`, against real executives on loopback: a queue
//! opened at one node receives messages sent from the other, handed out highest priority
//! first; the specification's refusals (`BUSY`, `EXIST`, `NOT_EXIST`, `QUEUE_FULL`,
//! `TIMEOUT`, `BAD_HANDLE`, `QUEUE_NOT_AVAILABLE`, `NAME_TOO_LONG` from the library); a queue
//! group's round robin across nodes; the queue of a node killed with SIGKILL is closed at the
//! survivor and keeps its messages for the next opener; a send-receive from one node answered
//! by the other node's getter (`NO_SPACE`, a second reply's `NOT_EXIST`, a caller's `TIMEOUT`
//! and the late reply refused), a get cancelled from a second connection (`INTERRUPT`); and
//! `aisctl msg send/get/ls` run as processes.
//!
//! Assumes: loopback only, no root, free UDP ports from the kernel, a loaded 2-core machine
//! (every wait is generous). The processes are killed when a test ends, whatever happens.

mod common;

use std::process::Command;
use std::time::{Duration, Instant};

use ais_client::msg::{
    Attributes, MAX_NAME, MessageBody, Msg, OPEN_CREATE, POLICY_ROUND_ROBIN, QUEUE_PERSISTENT,
    QueueHandle,
};
use ais_client::{AisError, Error};
use bytes::Bytes;
use common::cluster::Cluster;

const LONG: Duration = Duration::from_secs(20);

fn pair(name: &str) -> Cluster {
    let mut c = Cluster::loopback(name, 2, "");
    c.start_all();
    for i in 0..2 {
        c.wait_ring(i, &[1, 2], LONG);
    }
    c
}

fn msg(c: &Cluster, i: usize) -> Msg {
    let deadline = Instant::now() + LONG;
    loop {
        match Msg::connect(&c.node(i).socket) {
            Ok(m) => return m,
            Err(e) if Instant::now() > deadline => panic!("connect to node {}: {e}", i + 1),
            Err(_) => std::thread::sleep(Duration::from_millis(20)),
        }
    }
}

fn again<T>(op: impl FnMut() -> Result<T, Error>) -> Result<T, Error> {
    common::ckpt::again(LONG, op)
}

fn attrs(size: u64) -> Attributes {
    Attributes {
        creation_flags: QUEUE_PERSISTENT,
        size: [size; 4],
        retention_time: 0,
    }
}

fn body(p: u8, data: &str) -> MessageBody {
    MessageBody {
        msg_type: 1,
        version: 1,
        priority: p,
        sender_name: Bytes::from_static(b"test"),
        data: Bytes::copy_from_slice(data.as_bytes()),
    }
}

fn ais<T: std::fmt::Debug>(r: Result<T, Error>) -> Option<AisError> {
    r.unwrap_err().ais_error()
}

fn get_text(m: &mut Msg, h: QueueHandle, timeout: u64) -> Result<String, Error> {
    again(|| m.message_get(h, timeout))
        .map(|r| String::from_utf8_lossy(&r.message.data).into_owned())
}

#[test]
fn queues_across_nodes_with_their_errors_and_groups() {
    let c = pair("msg-client");
    let (mut m1, mut m2) = (msg(&c, 0), msg(&c, 1));
    let h = again(|| m1.queue_open(b"jobs", OPEN_CREATE, Some(attrs(64)))).unwrap();
    for (p, d) in [(3, "low"), (0, "high"), (1, "mid")] {
        again(|| m2.message_send(b"jobs", &body(p, d))).unwrap();
    }
    let got: Vec<String> = (0..3).map(|_| get_text(&mut m1, h, 0).unwrap()).collect();
    assert_eq!(got, ["high", "mid", "low"]);
    // A get that waits is answered by a send from the other node.
    let sender = std::thread::spawn({
        let socket = c.node(1).socket.clone();
        move || {
            std::thread::sleep(Duration::from_millis(200));
            let mut m = Msg::connect(&socket).unwrap();
            again(|| m.message_send(b"jobs", &body(2, "later"))).unwrap();
        }
    });
    assert_eq!(get_text(&mut m1, h, 10_000_000_000).unwrap(), "later");
    sender.join().unwrap();
    // The refusals.
    assert_eq!(ais(get_text(&mut m1, h, 0)), Some(AisError::Timeout));
    assert_eq!(ais(m2.queue_open(b"jobs", 0, None)), Some(AisError::Busy));
    assert_eq!(
        ais(m2.queue_open(b"jobs", OPEN_CREATE, Some(attrs(65)))),
        Some(AisError::Exist)
    );
    assert_eq!(
        ais(m2.queue_open(b"none", 0, None)),
        Some(AisError::NotExist)
    );
    assert_eq!(
        ais(m2.queue_open(&[b'x'; MAX_NAME + 1], 0, None)),
        Some(AisError::NameTooLong)
    );
    assert_eq!(
        ais(m2.message_send(b"jobs", &body(0, &"f".repeat(65)))),
        Some(AisError::QueueFull)
    );
    assert_eq!(
        ais(m2.message_send(b"none", &body(0, "x"))),
        Some(AisError::NotExist)
    );
    // A group over a queue at each node, round robin.
    let h2 = again(|| m2.queue_open(b"jobs2", OPEN_CREATE, Some(attrs(64)))).unwrap();
    again(|| m1.group_create(b"workers", POLICY_ROUND_ROBIN)).unwrap();
    assert_eq!(
        ais(m2.message_send(b"workers", &body(0, "x"))),
        Some(AisError::QueueNotAvailable)
    );
    again(|| m1.group_insert(b"workers", b"jobs")).unwrap();
    again(|| m2.group_insert(b"workers", b"jobs2")).unwrap();
    for i in 0..4 {
        again(|| m2.message_send(b"workers", &body(0, &format!("w{i}")))).unwrap();
    }
    assert_eq!(get_text(&mut m1, h, 0).unwrap(), "w0");
    assert_eq!(get_text(&mut m1, h, 0).unwrap(), "w2");
    assert_eq!(get_text(&mut m2, h2, 0).unwrap(), "w1");
    assert_eq!(get_text(&mut m2, h2, 0).unwrap(), "w3");
    // Close: the handle is gone, the queue and a message sent after stay.
    again(|| m1.queue_close(h)).unwrap();
    assert_eq!(ais(m1.queue_close(h)), Some(AisError::BadHandle));
    again(|| m2.message_send(b"jobs", &body(0, "kept"))).unwrap();
    let h = again(|| m2.queue_open(b"jobs", 0, None)).unwrap();
    assert_eq!(get_text(&mut m2, h, 0).unwrap(), "kept");
    let list = again(|| m1.list()).unwrap();
    assert_eq!(list.len(), 2);
    assert!(list.iter().all(|q| q.status.open && q.opener_node == 2));
}

#[test]
fn the_queue_of_a_killed_node_is_closed_and_keeps_its_messages() {
    let mut c = pair("msg-kill");
    let mut m1 = msg(&c, 0);
    let mut m2 = msg(&c, 1);
    let _h = again(|| m1.queue_open(b"orders", OPEN_CREATE, Some(attrs(1024)))).unwrap();
    for i in 0..5 {
        again(|| m2.message_send(b"orders", &body(1, &format!("o{i}")))).unwrap();
    }
    c.kill(0);
    c.wait_ring(1, &[2], LONG);
    // Node 2 opens it once the sync closed it (BUSY until then) and gets every message.
    let deadline = Instant::now() + LONG;
    let h = loop {
        match again(|| m2.queue_open(b"orders", 0, None)) {
            Ok(h) => break h,
            Err(e) if e.ais_error() == Some(AisError::Busy) && Instant::now() < deadline => {
                std::thread::sleep(Duration::from_millis(50));
            }
            Err(e) => panic!("open after the kill: {e}"),
        }
    };
    let got: Vec<String> = (0..5).map(|_| get_text(&mut m2, h, 0).unwrap()).collect();
    assert_eq!(got, ["o0", "o1", "o2", "o3", "o4"]);
    assert_eq!(ais(get_text(&mut m2, h, 0)), Some(AisError::Timeout));
}

fn aisctl(c: &Cluster, i: usize, args: &[&str]) -> (i32, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_aisctl"))
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
fn aisctl_msg_sends_gets_and_lists() {
    let c = pair("msg-aisctl");
    let mut m1 = msg(&c, 0);
    let h = again(|| m1.queue_open(b"q", OPEN_CREATE, Some(attrs(1024)))).unwrap();
    again(|| m1.queue_close(h)).unwrap();
    let (code, out, err) = aisctl(&c, 1, &["msg", "send", "q", "hello", "--priority", "0"]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("sent 5 bytes to q"), "{out}");
    let (code, out, err) = aisctl(&c, 0, &["msg", "ls"]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(
        out.lines()
            .any(|l| l.starts_with("q ") && l.contains("closed") && l.contains("1/0/0/0")),
        "{out}"
    );
    let (code, out, _) = aisctl(&c, 0, &["msg", "ls", "--json"]);
    assert_eq!(code, 0);
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v[0]["name"], "q");
    assert_eq!(v[0]["priorities"][0]["messages"], 1);
    let (code, out, err) = aisctl(&c, 0, &["msg", "get", "q", "--timeout-ms", "0"]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(
        out.contains("priority 0 from node 2 (5 bytes): hello"),
        "{out}"
    );
    let (code, out, _) = aisctl(&c, 0, &["msg", "get", "q", "--timeout-ms", "0"]);
    assert_eq!(code, 0);
    assert!(out.contains("no message in q"), "{out}");
    let (code, _, err) = aisctl(&c, 0, &["msg", "send", "nope", "x"]);
    assert_ne!(code, 0);
    assert!(err.contains("SA_AIS_ERR_NOT_EXIST"), "{err}");
}

#[test]
fn send_receive_and_reply_across_two_nodes_and_cancel() {
    let c = pair("msg-reply");
    let mut m1 = msg(&c, 0);
    let h = again(|| m1.queue_open(b"svc", OPEN_CREATE, Some(attrs(256)))).unwrap();
    // Node 2's caller waits for the reply; node 1's server gets the question and replies.
    let caller = std::thread::spawn({
        let socket = c.node(1).socket.clone();
        move || {
            let mut m = Msg::connect(&socket).unwrap();
            again(|| m.message_send_receive(b"svc", &body(1, "ping"), 4, 20_000_000_000))
        }
    });
    let got = again(|| m1.message_get(h, 20_000_000_000)).unwrap();
    assert_eq!(&got.message.data[..], b"ping");
    assert_eq!(got.key.node, 2);
    assert_eq!(
        ais(again(|| m1.message_reply(got.key, &body(0, "too long")))),
        Some(AisError::NoSpace)
    );
    again(|| m1.message_reply(got.key, &body(0, "pong"))).unwrap();
    let replied = caller.join().unwrap().unwrap();
    assert_eq!(&replied.message.data[..], b"pong");
    // Replied once: a second reply finds nobody waiting.
    assert_eq!(
        ais(again(|| m1.message_reply(got.key, &body(0, "again")))),
        Some(AisError::NotExist)
    );
    // A caller whose time runs out: TIMEOUT, and the late reply is refused.
    let mut m2 = msg(&c, 1);
    assert_eq!(
        ais(again(|| m2.message_send_receive(
            b"svc",
            &body(1, "hurry"),
            64,
            300_000_000
        ))),
        Some(AisError::Timeout)
    );
    let late = again(|| m1.message_get(h, 0)).unwrap();
    assert_eq!(
        ais(again(|| m1.message_reply(late.key, &body(0, "late")))),
        Some(AisError::NotExist)
    );
    // Cancel: a get waiting on one connection is interrupted from another of this process.
    let getter = std::thread::spawn(move || {
        let r = m1.message_get(h, 20_000_000_000);
        (m1, r)
    });
    let mut m3 = msg(&c, 0);
    let deadline = Instant::now() + LONG;
    loop {
        match m3.message_cancel(h) {
            Ok(()) => break,
            Err(e) if e.ais_error() == Some(AisError::NotExist) && Instant::now() < deadline => {
                std::thread::sleep(Duration::from_millis(20));
            }
            Err(e) => panic!("cancel: {e}"),
        }
    }
    let (_m1, r) = getter.join().unwrap();
    assert_eq!(ais(r), Some(AisError::Interrupt));
}
