//! Client IPC over shared-memory rings (`dataplane::shm`) with real `aisexec` processes on
//! loopback: CPG through the unchanged client API over the rings, the fallback to
//! SEQPACKET chosen by the configuration or by the client, and the fault tests with their
//! defined outcomes (a client killed in the middle of writing a record, corrupted ring
//! indices, segments of the wrong size or unsealed, crashes leaving nothing behind).
//!
//! Assumes: loopback only, no root, free UDP ports from the kernel, a loaded 2-core machine
//! (every wait is generous). The processes are killed when a test ends.

mod common;

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use ais_client::cpg::{Cpg, CpgEvent};
use ais_client::{Connection, Transport};
use ais_proto::cpg::{CpgAddress, CpgProtocol, Reason, Request as CpgRequest};
use ais_proto::ipc::{
    AisError, Encoded, Frame, Guarantee, Kind, MAX_PAYLOAD, Nothing, Protocol, Reply, Request,
    VERSION, WAKE, shm_setup_request,
};
use bytes::Bytes;
use common::cluster::{Cluster, assert_one_order, cpg_traffic, wait_confchg};
use dataplane::shm::{self, Segment};
use dataplane::unix::{Recv, SeqpacketConn};

const GROUP: &[u8] = b"shm-orders";
const LONG: Duration = Duration::from_secs(20);

fn members(n: usize) -> impl Fn(&CpgEvent) -> bool {
    move |ev| matches!(ev, CpgEvent::ConfChg { members, .. } if members.len() == n)
}

/// Waits until node `i`'s log contains `line`.
fn wait_log(c: &Cluster, i: usize, line: &str) {
    let deadline = Instant::now() + LONG;
    while !c.log(i).contains(line) {
        assert!(
            Instant::now() < deadline,
            "no log line `{line}`:\n{}",
            c.log(i)
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// The shared-memory mappings of our IPC segments in process `pid`.
fn ipc_mappings(pid: u32) -> usize {
    std::fs::read_to_string(format!("/proc/{pid}/maps"))
        .expect("maps")
        .lines()
        .filter(|l| l.contains("memfd:openais-ipc"))
        .count()
}

/// The names in /dev/shm (where POSIX shared memory would leave files).
fn dev_shm() -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir("/dev/shm")
        .map(|d| {
            d.filter_map(|e| e.ok())
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default();
    v.sort();
    v
}

/// The next packet on `sock`, which must be an answer: (request id, answer).
fn answer(sock: &SeqpacketConn) -> (u64, Reply<Nothing>) {
    let mut buf = vec![0u8; 4096];
    let Recv::Packet(n) = sock.recv(&mut buf).expect("recv") else {
        panic!("closed instead of answering")
    };
    let frame = Frame::decode(Bytes::copy_from_slice(&buf[..n])).expect("header");
    assert_eq!(frame.kind, Kind::Response);
    (frame.id, frame.body().expect("answer"))
}

/// A raw CPG connection that said Hello on its socket.
fn raw_hello(socket: &Path) -> SeqpacketConn {
    let sock = SeqpacketConn::connect(socket).expect("connect");
    let hello = Request::<Nothing>::Hello {
        version: VERSION,
        service: CpgProtocol::ID,
    };
    sock.send(&[&Encoded::request(1, &hello).to_vec()])
        .expect("send");
    assert_eq!(answer(&sock), (1, Reply::Ok));
    sock
}

/// A raw CPG connection moved to shared memory: its socket and its ring ends.
fn raw_shm(socket: &Path) -> (SeqpacketConn, shm::Writer, shm::Reader) {
    let sock = raw_hello(socket);
    let seg = Arc::new(Segment::create(shm::DEFAULT_RING_BYTES).expect("segment"));
    let setup = shm_setup_request(2, shm::DEFAULT_RING_BYTES as u32);
    sock.send_with_fd(&[&setup], seg.fd()).expect("send setup");
    assert_eq!(answer(&sock), (2, Reply::Ok));
    let (w, r) = seg.client_ends();
    (sock, w, r)
}

/// Writes one request into the ring and wakes the executive if it sleeps.
fn ring_request(sock: &SeqpacketConn, w: &mut shm::Writer, id: u64, req: CpgRequest) {
    let p = Encoded::request(id, &Request::Service(req));
    assert!(w.try_write(&[&p.head, &p.tail]).expect("ring"), "ring full");
    if w.wake_needed() {
        sock.send(&[&WAKE]).expect("wake");
    }
}

/// CPG through the unchanged client API over the rings: two nodes, three clients each way,
/// one order everywhere; the largest payload goes through; and the executive maps exactly
/// one segment per shared-memory client.
#[test]
fn cpg_over_shared_memory() {
    let mut c = Cluster::loopback("shm-cpg", 2, "");
    c.start_all();
    c.wait_ring(0, &[1, 2], LONG);
    c.wait_ring(1, &[1, 2], LONG);
    let mut a = c.cpg(0);
    let mut b = c.cpg(1);
    let mut d = c.cpg(1);
    for cl in [&mut a, &mut b, &mut d] {
        assert_eq!(cl.connection().transport(), Transport::Shm);
    }
    let pid = c.node(1).pid().expect("pid");
    // d, the harness's status connection is SEQPACKET or shm too: count at least ours.
    assert!(ipc_mappings(pid) >= 2, "b and d map their segments");
    a.join(GROUP).expect("join");
    b.join(GROUP).expect("join");
    wait_confchg(&mut a, LONG, members(2));
    wait_confchg(&mut b, LONG, members(2));
    let orders = cpg_traffic(&mut [&mut a, &mut b], GROUP, 3000, 1024);
    assert_one_order(&orders, 6000);
    // The largest payload, both ways.
    let big = vec![0xa5u8; MAX_PAYLOAD];
    a.mcast_retry(GROUP, Guarantee::Agreed, &big, LONG)
        .expect("big mcast");
    for cl in [&mut a, &mut b] {
        let deadline = Instant::now() + LONG;
        loop {
            assert!(Instant::now() < deadline, "the big message did not arrive");
            if let Some(CpgEvent::Deliver { data, .. }) =
                cl.dispatch(Some(Duration::from_secs(1))).expect("dispatch")
            {
                assert_eq!(data.len(), MAX_PAYLOAD);
                assert!(data.iter().all(|&x| x == 0xa5));
                break;
            }
        }
    }
    // A poll loop: has_queued() false arms the wake-up, so the descriptor fires for the next
    // delivery.
    assert!(!b.connection().has_queued());
    a.mcast_retry(GROUP, Guarantee::Agreed, b"poke", LONG)
        .expect("mcast");
    let mut ep = dataplane::epoll::Epoll::new(4).expect("epoll");
    ep.add(
        std::os::fd::AsFd::as_fd(b.connection()),
        1,
        dataplane::epoll::Interest::READ,
    )
    .expect("add");
    let mut ready = Vec::new();
    ep.wait(&mut ready, Some(LONG)).expect("wait");
    assert!(
        ready.iter().any(|r| r.token == 1 && r.read),
        "the descriptor became readable"
    );
    match b.dispatch(Some(LONG)).expect("dispatch") {
        Some(CpgEvent::Deliver { data, .. }) => assert_eq!(&data[..], b"poke"),
        other => panic!("{other:?}"),
    }
}

/// The fallback: a client that asks for SEQPACKET, and an executive configured with
/// `ipc_transport = "seqpacket"` (which refuses setups: NOT_SUPPORTED); clients of both
/// kinds in one group see one order.
#[test]
fn fallback_to_seqpacket_by_client_or_configuration() {
    let ports = common::cluster::free_ports(2);
    let mut c = Cluster::new(
        "shm-fallback",
        2,
        |node| {
            let totem = common::cluster::key_lines(&node.dir);
            let cfg = ais::harness::loopback_config(node, &ports, &totem);
            if node.id == 2 {
                cfg.replace("[aisexec]\n", "[aisexec]\nipc_transport = \"seqpacket\"\n")
            } else {
                cfg
            }
        },
        Vec::new(),
    );
    c.start_all();
    c.wait_ring(0, &[1, 2], LONG);
    c.wait_ring(1, &[1, 2], LONG);
    // Node 1 allows shared memory; this client chooses the socket.
    let conn = Connection::<CpgProtocol>::connect_with(&c.node(0).socket, Transport::Seqpacket)
        .expect("connect");
    assert_eq!(conn.transport(), Transport::Seqpacket);
    let mut by_client = Cpg::from_connection(conn);
    // The library's default on the same executive.
    let mut shm_client = c.cpg(0);
    assert_eq!(shm_client.connection().transport(), Transport::Shm);
    assert_eq!(shm_client.local_get().expect("local_get"), 1);
    // Node 2 is configured off: the library asks, is refused, stays on the socket.
    let mut by_config = c.cpg(1);
    assert_eq!(by_config.connection().transport(), Transport::Seqpacket);
    let raw = raw_hello(&c.node(1).socket);
    let seg = Segment::create(shm::DEFAULT_RING_BYTES).expect("segment");
    raw.send_with_fd(
        &[&shm_setup_request(2, shm::DEFAULT_RING_BYTES as u32)],
        seg.fd(),
    )
    .expect("send");
    assert_eq!(answer(&raw), (2, Reply::Error(AisError::NotSupported)));
    // One process joins a group once (CPG names members by node and pid): the two
    // SEQPACKET clients, one per node, share the group.
    for cl in [&mut by_client, &mut by_config] {
        cl.join(GROUP).expect("join");
    }
    for cl in [&mut by_client, &mut by_config] {
        wait_confchg(cl, LONG, members(2));
    }
    let orders = cpg_traffic(&mut [&mut by_client, &mut by_config], GROUP, 500, 200);
    assert_one_order(&orders, 1000);
}

/// Segments the executive must refuse at setup, each with a clear logged reason and an
/// error answer; the connection goes on over its socket.
#[test]
fn wrong_segments_are_refused_at_setup() {
    let mut c = Cluster::loopback("shm-refuse", 1, "");
    c.start_all();
    c.wait_ring(0, &[1], LONG);
    let sock = raw_hello(&c.node(0).socket);
    let ring = shm::DEFAULT_RING_BYTES;
    let cases: [(u64, usize, bool, u32, &str); 4] = [
        (
            10,
            shm::segment_bytes(ring) - 4096,
            true,
            ring as u32,
            &format!(
                "shared-memory segment of {} bytes, expected {}",
                shm::segment_bytes(ring) - 4096,
                shm::segment_bytes(ring)
            ),
        ),
        (
            11,
            shm::segment_bytes(ring) * 2,
            true,
            ring as u32,
            "expected",
        ),
        (
            12,
            shm::segment_bytes(ring),
            false,
            ring as u32,
            "not a memfd sealed against resizing",
        ),
        (
            13,
            shm::segment_bytes(1 << 16),
            true,
            1 << 16,
            "cannot hold a packet of",
        ),
    ];
    for (id, bytes, seal, ring_bytes, line) in cases {
        let fd = Segment::create_sized_fd(bytes, seal).expect("memfd");
        sock.send_with_fd(
            &[&shm_setup_request(id, ring_bytes)],
            std::os::fd::AsFd::as_fd(&fd),
        )
        .expect("send");
        assert_eq!(answer(&sock), (id, Reply::Error(AisError::InvalidParam)));
        wait_log(&c, 0, line);
    }
    // A setup without a descriptor.
    sock.send(&[&shm_setup_request(14, ring as u32)])
        .expect("send");
    assert_eq!(answer(&sock), (14, Reply::Error(AisError::InvalidParam)));
    wait_log(&c, 0, "asked for shared memory without a segment");
    // Still served on the socket.
    sock.send(&[&Encoded::request(15, &Request::<Nothing>::Status).to_vec()])
        .expect("send");
    let mut buf = vec![0u8; 1 << 16];
    let Recv::Packet(n) = sock.recv(&mut buf).expect("recv") else {
        panic!("closed")
    };
    let frame = Frame::decode(Bytes::copy_from_slice(&buf[..n])).expect("frame");
    assert_eq!((frame.kind, frame.id), (Kind::Response, 15));
}

/// A client that scribbles on its ring's indices is disconnected with the reason logged;
/// another shared-memory client of the same executive carries on.
#[test]
fn corrupt_ring_indices_disconnect_only_that_client() {
    let mut c = Cluster::loopback("shm-corrupt", 1, "");
    c.start_all();
    c.wait_ring(0, &[1], LONG);
    let mut good = c.cpg(0);
    assert_eq!(good.connection().transport(), Transport::Shm);
    good.join(GROUP).expect("join");
    wait_confchg(&mut good, LONG, members(1));
    let pid = c.node(0).pid().expect("pid");
    let before = ipc_mappings(pid);

    let (sock, mut w, mut r) = raw_shm(&c.node(0).socket);
    assert_eq!(ipc_mappings(pid), before + 1);
    // A request through the ring works first (another group: CPG names members by node and
    // pid, and both clients live in this process).
    ring_request(
        &sock,
        &mut w,
        3,
        CpgRequest::Join {
            group: Bytes::from_static(b"scribbler"),
        },
    );
    let mut record = Vec::new();
    let deadline = Instant::now() + LONG;
    while !r.try_read(&mut record).expect("ring") {
        assert!(Instant::now() < deadline, "no answer in the ring");
        std::thread::sleep(Duration::from_millis(5));
    }
    let frame = Frame::decode(Bytes::from(record)).expect("frame");
    assert_eq!((frame.kind, frame.id), (Kind::Response, 3));
    assert_eq!(frame.body::<Reply<Nothing>>().expect("answer"), Reply::Ok);
    assert_eq!(c.counter(0, "cpg_local_members"), 2);
    // Now a head far beyond one ring ahead of the executive's tail.
    w.scribble_head(1 << 40);
    sock.send(&[&WAKE]).expect("wake");
    let mut buf = [0u8; 64];
    let deadline = Instant::now() + LONG;
    loop {
        match sock.recv_timeout(&mut buf, Some(LONG)).expect("recv") {
            Some(Recv::Closed) => break,
            Some(_) => assert!(Instant::now() < deadline, "not disconnected"),
            None => panic!("not disconnected within {LONG:?}"),
        }
    }
    wait_log(
        &c,
        0,
        "its shared-memory ring is corrupt (ring index corrupt",
    );
    // Its membership is gone; the good client and the executive carry on.
    let deadline = Instant::now() + LONG;
    while c.counter(0, "cpg_local_members") != 1 {
        assert!(
            Instant::now() < deadline,
            "the scribbler's membership stays"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    good.mcast_retry(GROUP, Guarantee::Agreed, b"still here", LONG)
        .expect("mcast");
    match good.dispatch(Some(LONG)).expect("dispatch") {
        Some(CpgEvent::Deliver { data, .. }) => assert_eq!(&data[..], b"still here"),
        other => panic!("{other:?}"),
    }
    // Its segment is unmapped.
    let deadline = Instant::now() + LONG;
    while ipc_mappings(pid) != before {
        assert!(Instant::now() < deadline, "the segment stays mapped");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// What the helper prints once its torn record is written.
const READY: &str = "HELPER-READY";

/// The environment variable that turns [`helper_writer_killed_mid_write`] into the helper.
const CHILD_ENV: &str = "AIS_SHM_TEST_CHILD_SOCKET";

/// Not a test on its own: the process `client_killed_mid_write` starts (this test binary
/// again) runs it with `AIS_SHM_TEST_CHILD_SOCKET` set. It joins the group through its ring,
/// publishes 10 whole messages, writes the first 100 bytes of an 11th without publishing
/// it, says "ready" and waits to be killed. Without the variable it returns at once.
#[test]
fn helper_writer_killed_mid_write() {
    let Some(socket) = std::env::var_os(CHILD_ENV) else {
        return;
    };
    let (sock, mut w, _r) = raw_shm(Path::new(&socket));
    ring_request(
        &sock,
        &mut w,
        3,
        CpgRequest::Join {
            group: Bytes::from_static(GROUP),
        },
    );
    for i in 0..10u64 {
        ring_request(
            &sock,
            &mut w,
            4 + i,
            CpgRequest::Mcast {
                group: Bytes::from_static(GROUP),
                guarantee: Guarantee::Agreed,
                data: Bytes::from(format!("whole {i}")),
            },
        );
    }
    let torn = Encoded::request(
        99,
        &Request::Service(CpgRequest::Mcast {
            group: Bytes::from_static(GROUP),
            guarantee: Guarantee::Agreed,
            data: Bytes::from(vec![b't'; 4000]),
        }),
    )
    .to_vec();
    assert!(w.write_torn(&torn, 100).expect("torn"));
    println!("{READY}");
    std::thread::sleep(Duration::from_secs(600));
}

/// A child process killed and reaped when dropped, whatever the test did.
struct Reaped(std::process::Child);

impl Drop for Reaped {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// A client process killed (SIGKILL) with a record half written in its ring: its whole
/// messages are delivered, the half one never is, the group sees it leave (procdown), the
/// executive unmaps its segment and serves everyone else, and nothing is left in /dev/shm.
#[test]
fn client_killed_mid_write() {
    let shm_before = dev_shm();
    let mut c = Cluster::loopback("shm-killed", 1, "");
    c.start_all();
    c.wait_ring(0, &[1], LONG);
    let mut watcher = c.cpg(0);
    watcher.join(GROUP).expect("join");
    wait_confchg(&mut watcher, LONG, members(1));
    let pid = c.node(0).pid().expect("pid");
    let before = ipc_mappings(pid);
    let mut child = Reaped(
        Command::new(std::env::current_exe().expect("exe"))
            .args([
                "--exact",
                "helper_writer_killed_mid_write",
                "--nocapture",
                "--test-threads=1",
            ])
            .env(CHILD_ENV, &c.node(0).socket)
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("helper"),
    );
    let child_pid = child.0.id();
    let mut lines = BufReader::new(child.0.stdout.take().expect("stdout")).lines();
    loop {
        let line = lines.next().expect("helper said nothing").expect("read");
        if line.contains(READY) {
            break;
        }
    }
    assert_eq!(
        ipc_mappings(pid),
        before + 1,
        "the helper's segment is mapped"
    );
    let mut whole = Vec::new();
    let mut left = None;
    let deadline = Instant::now() + LONG;
    // Kill it once its ten messages are in; then expect its departure.
    while left.is_none() {
        assert!(
            Instant::now() < deadline,
            "saw {whole:?}, no departure of the helper"
        );
        match watcher
            .dispatch(Some(Duration::from_secs(1)))
            .expect("dispatch")
        {
            Some(CpgEvent::Deliver { data, sender, .. }) => {
                assert_eq!(sender.pid, child_pid);
                whole.push(String::from_utf8(data.to_vec()).expect("text"));
                if whole.len() == 10 {
                    child.0.kill().expect("kill");
                    child.0.wait().expect("wait");
                }
            }
            Some(CpgEvent::ConfChg { left: l, .. }) if !l.is_empty() => left = Some(l),
            _ => {}
        }
    }
    let expected: Vec<String> = (0..10).map(|i| format!("whole {i}")).collect();
    assert_eq!(
        whole, expected,
        "every whole message once, in order; the torn one never"
    );
    assert_eq!(
        left.expect("left"),
        vec![(
            CpgAddress {
                node: 1,
                pid: child_pid
            },
            Reason::ProcDown
        )]
    );
    // Nothing more arrives (the torn record stays invisible), the executive serves on.
    watcher
        .mcast_retry(GROUP, Guarantee::Agreed, b"after", LONG)
        .expect("mcast");
    match watcher.dispatch(Some(LONG)).expect("dispatch") {
        Some(CpgEvent::Deliver { data, .. }) => assert_eq!(&data[..], b"after"),
        other => panic!("{other:?}"),
    }
    let deadline = Instant::now() + LONG;
    while ipc_mappings(pid) != before {
        assert!(
            Instant::now() < deadline,
            "the dead client's segment stays mapped"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    assert_eq!(dev_shm(), shm_before, "nothing left in /dev/shm");
}

/// An executive killed (SIGKILL) under shared-memory clients: a client waiting in a call or
/// for callbacks gets `Closed` (not a hang), nothing is left in /dev/shm, and a restarted
/// executive on the same socket serves shared-memory clients again.
#[test]
fn executive_killed_leaves_nothing_behind() {
    let shm_before = dev_shm();
    let mut c = Cluster::loopback("shm-exec-killed", 1, "");
    c.start_all();
    c.wait_ring(0, &[1], LONG);
    let mut a = c.cpg(0);
    a.join(GROUP).expect("join");
    wait_confchg(&mut a, LONG, members(1));
    let waiter = std::thread::spawn(move || {
        // Waits for callbacks when the executive dies.
        let t = Instant::now();
        loop {
            match a.dispatch(Some(Duration::from_secs(1))) {
                Err(e) => return (e.to_string(), t.elapsed()),
                Ok(_) => assert!(t.elapsed() < Duration::from_secs(60), "no error"),
            }
        }
    });
    std::thread::sleep(Duration::from_millis(200));
    c.kill(0);
    let (err, _) = waiter.join().expect("waiter");
    assert!(err.contains("closed the connection"), "{err}");
    assert_eq!(dev_shm(), shm_before, "nothing left in /dev/shm");
    c.start_all();
    c.wait_ring(0, &[1], LONG);
    let mut b = c.cpg(0);
    assert_eq!(b.connection().transport(), Transport::Shm);
    b.join(GROUP).expect("join after restart");
    wait_confchg(&mut b, LONG, members(1));
}
