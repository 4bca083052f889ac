//! MSG with three real executives under a partition and its heal (network namespaces): what
//! the service promises (`ais/core/src/services/msg/mod.rs`, docs/services.md "MSG") checked
//! end to end through the client library.
//!
//! A queue opened at node 1 holds three messages; then {1} | {2,3}. Side A (node 1, the
//! opener) takes the first message and sends one more; side B, where the queue is closed
//! (its opener's node left), sends two, and node 3 opens the queue there and takes two
//! messages (the first again: side B cannot know side A took it). After the heal every node
//! holds the documented merge: each message once, none that either side took, side A's order
//! first; node 1 (the lowest node's opener) keeps the queue and node 3's handle is refused
//! (`BAD_HANDLE`).
//!
//! Assumes: a loaded 2-core machine (every wait is generous, up to [`LONG`]); free UDP ports
//! from the kernel; runs as root with `ip` from iproute2 and creates and deletes its own
//! namespaces (it fails, never skips, without them).

mod common;

use std::time::{Duration, Instant};

use ais_client::msg::{Attributes, MessageBody, Msg, OPEN_CREATE, QUEUE_PERSISTENT, QueueHandle};
use ais_client::{AisError, Error};
use bytes::Bytes;
use common::cluster::{Cluster, Mode, lab_netns, netns_config};

const LONG: Duration = Duration::from_secs(30);

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

fn body(data: &str) -> MessageBody {
    MessageBody {
        msg_type: 1,
        version: 1,
        priority: 1,
        sender_name: Bytes::new(),
        data: Bytes::copy_from_slice(data.as_bytes()),
    }
}

fn get(m: &mut Msg, h: QueueHandle) -> Result<String, Error> {
    again(|| m.message_get(h, 0)).map(|r| String::from_utf8_lossy(&r.message.data).into_owned())
}

/// Opens `q` at a node whose sync may not have closed it yet (BUSY meanwhile).
fn open_when_closed(m: &mut Msg) -> QueueHandle {
    let deadline = Instant::now() + LONG;
    loop {
        match again(|| m.queue_open(b"q", 0, None)) {
            Ok(h) => return h,
            Err(e) if e.ais_error() == Some(AisError::Busy) && Instant::now() < deadline => {
                std::thread::sleep(Duration::from_millis(50));
            }
            Err(e) => panic!("open: {e}"),
        }
    }
}

#[test]
fn a_partition_heals_into_one_queue_with_each_message_once() {
    let lab = netlab::Lab::new(3, 1500).expect("network-namespace lab (needs root and ip)");
    let mut c = Cluster::new(
        "msg-partition",
        3,
        |node| netns_config(Mode::Unicast, 1500, node, &lab),
        lab_netns(&lab),
    );
    c.start_all();
    for i in 0..3 {
        c.wait_ring(i, &[1, 2, 3], LONG);
    }
    let mut m: Vec<Msg> = (0..3).map(|i| msg(&c, i)).collect();
    let attrs = Attributes {
        creation_flags: QUEUE_PERSISTENT,
        size: [4096; 4],
        retention_time: 0,
    };
    let h1 = again(|| m[0].queue_open(b"q", OPEN_CREATE, Some(attrs))).expect("create");
    for d in ["m1", "m2", "m3"] {
        again(|| m[1].message_send(b"q", &body(d))).expect("send");
    }

    // {1} | {2,3}.
    lab.cut(1).expect("cut host 1");
    c.wait_ring(0, &[1], LONG);
    c.wait_ring(1, &[2, 3], LONG);
    c.wait_ring(2, &[2, 3], LONG);
    // Side A: the opener takes m1 and a message arrives.
    assert_eq!(get(&mut m[0], h1).unwrap(), "m1");
    again(|| m[0].message_send(b"q", &body("a1"))).expect("send at A");
    // Side B: the queue is closed there; two sends, and node 3 opens it and takes m2.
    again(|| m[1].message_send(b"q", &body("b1"))).expect("send at B");
    again(|| m[1].message_send(b"q", &body("b2"))).expect("send at B");
    let h3 = open_when_closed(&mut m[2]);
    // Side B cannot know that side A took m1: it hands it out too (docs/services.md, MSG:
    // once per side when a queue is reopened on the side without its opener). Then m2.
    assert_eq!(get(&mut m[2], h3).unwrap(), "m1");
    assert_eq!(get(&mut m[2], h3).unwrap(), "m2");

    lab.heal(1).expect("heal host 1");
    for i in 0..3 {
        c.wait_ring(i, &[1, 2, 3], LONG);
    }
    // Every node lists the same queue, open at node 1 with the four messages left.
    let deadline = Instant::now() + LONG;
    loop {
        let lists: Vec<_> = (0..3).map(|i| again(|| m[i].list()).unwrap()).collect();
        let merged = lists.iter().all(|l| {
            l.len() == 1
                && l[0].opener_node == 1
                && l[0].status.usage[1].messages == 4
                && *l == lists[0]
        });
        if merged {
            break;
        }
        assert!(Instant::now() < deadline, "no merge: {lists:?}");
        std::thread::sleep(Duration::from_millis(100));
    }
    let got: Vec<String> = (0..4).map(|_| get(&mut m[0], h1).unwrap()).collect();
    assert_eq!(got, ["m3", "a1", "b1", "b2"]);
    assert_eq!(
        get(&mut m[0], h1).unwrap_err().ais_error(),
        Some(AisError::Timeout)
    );
    // Node 3's open did not survive the merge.
    assert_eq!(
        get(&mut m[2], h3).unwrap_err().ais_error(),
        Some(AisError::BadHandle)
    );
}
