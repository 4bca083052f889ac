//! Three `aisexec` processes on loopback, driven through the client library: CPG order
//! checked at the clients and by the virtual-synchrony checker on the event logs, kill -9 and
//! restart, TRY_AGAIN without loss, dead and stuck clients, malformed packets, EVS.
//!
//! Assumes: loopback only, no root, free UDP ports from the kernel, a loaded 2-core machine
//! (every wait is generous; the only timing asserted is "within seconds"). The processes are
//! killed when a test ends, whatever happens.

mod common;

use std::collections::HashSet;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use ais_client::cpg::{Cpg, CpgEvent};
use ais_client::evs::{Evs, EvsEvent};
use ais_proto::cpg::{CpgAddress, CpgProtocol, Reason, Request as CpgRequest};
use ais_proto::ipc::{
    AisError, Encoded, Frame, Guarantee, Kind, Nothing, Protocol, Reply, Request, VERSION,
};
use common::cluster::{Cluster, wait_confchg};
use dataplane::unix::{Recv, SeqpacketConn};

const GROUP: &[u8] = b"orders";
const LONG: Duration = Duration::from_secs(15);

fn members(n: usize) -> impl Fn(&CpgEvent) -> bool {
    move |ev| matches!(ev, CpgEvent::ConfChg { members, .. } if members.len() == n)
}

/// Message `i` of node `node`: sizes from 10 bytes to several frames.
fn payload(node: u32, i: u32) -> Vec<u8> {
    let len = [10, 100, 1000, 3000, 5000][(i % 5) as usize];
    let mut v = Vec::with_capacity(len);
    v.extend_from_slice(&node.to_le_bytes());
    v.extend_from_slice(&i.to_le_bytes());
    v.resize(len, (node * 31 + i) as u8);
    v
}

/// Every client sends `count` messages (alternately agreed and safe), then collects until it
/// has `expect` deliveries; returns each client's order of (node, index) and the TRY_AGAIN
/// answers met.
fn traffic(clients: &mut [Cpg], count: u32, expect: usize) -> (Vec<Vec<(u32, u32)>>, u64) {
    let results: Vec<(Vec<(u32, u32)>, u64)> = std::thread::scope(|s| {
        let hs: Vec<_> = clients
            .iter_mut()
            .map(|cpg| {
                s.spawn(move || {
                    let node = cpg.local_get().expect("local_get");
                    let mut order = Vec::new();
                    let mut try_again = 0;
                    let record = |ev: Option<CpgEvent>, order: &mut Vec<(u32, u32)>| {
                        if let Some(CpgEvent::Deliver { data, sender, .. }) = ev {
                            let n = u32::from_le_bytes(data[0..4].try_into().unwrap());
                            let i = u32::from_le_bytes(data[4..8].try_into().unwrap());
                            assert_eq!(n, sender.node, "payload names its sender's node");
                            assert_eq!(&data[..], &payload(n, i)[..], "payload intact");
                            order.push((n, i));
                        }
                    };
                    for i in 0..count {
                        let g = if i % 2 == 0 {
                            Guarantee::Agreed
                        } else {
                            Guarantee::Safe
                        };
                        try_again += cpg
                            .mcast_retry(GROUP, g, &payload(node, i), LONG)
                            .expect("mcast");
                        while let Some(ev) = cpg.dispatch(Some(Duration::ZERO)).expect("dispatch") {
                            record(Some(ev), &mut order);
                        }
                    }
                    let deadline = Instant::now() + Duration::from_secs(60);
                    while order.len() < expect {
                        let left = deadline.saturating_duration_since(Instant::now());
                        assert!(
                            !left.is_zero(),
                            "node {node}: {} of {expect} delivered",
                            order.len()
                        );
                        record(cpg.dispatch(Some(left)).expect("dispatch"), &mut order);
                    }
                    (order, try_again)
                })
            })
            .collect();
        hs.into_iter()
            .map(|h| h.join().expect("client thread"))
            .collect()
    });
    let try_again = results.iter().map(|r| r.1).sum();
    (results.into_iter().map(|r| r.0).collect(), try_again)
}

fn assert_same_order(orders: &[Vec<(u32, u32)>], expect: usize) {
    for o in orders {
        assert_eq!(o.len(), expect);
        let unique: HashSet<_> = o.iter().collect();
        assert_eq!(unique.len(), expect, "no duplicates");
        assert_eq!(o, &orders[0], "identical order at every client");
    }
}

/// One watcher per node of `c`, joined to GROUP, after each saw all `n` of them.
fn watchers(c: &Cluster, n: usize) -> Vec<Cpg> {
    let mut watchers: Vec<Cpg> = (0..n).map(|i| c.cpg(i)).collect();
    for w in &mut watchers {
        // A join right after the ring formed may meet the services' sync messages in a
        // one-message send queue: TRY_AGAIN, retried as a client does.
        let deadline = Instant::now() + LONG;
        loop {
            match w.join(GROUP) {
                Err(e) if e.is_try_again() && Instant::now() < deadline => {
                    std::thread::sleep(Duration::from_millis(10));
                }
                r => break r.expect("join"),
            }
        }
    }
    for w in &mut watchers {
        wait_confchg(w, LONG, members(n));
    }
    watchers
}

/// `senders` `aisctl cpg send orders` processes, alternating between the nodes of `c`.
fn spawn_senders(c: &Cluster, senders: usize, per: u32, size: u32, extra: &[&str]) -> Vec<Child> {
    (0..senders)
        .map(|k| {
            Command::new(env!("CARGO_BIN_EXE_aisctl"))
                .arg("--socket")
                .arg(&c.node(k % c.len()).socket)
                .args(["cpg", "send", "orders"])
                .args(["--count", &per.to_string(), "--size", &size.to_string()])
                .args(extra)
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .expect("aisctl")
        })
        .collect()
}

/// Each watcher collects `expect` deliveries (within 60 s), mapped by `f(sender pid, data)`.
fn collect<T: Send>(
    watchers: &mut [Cpg],
    expect: usize,
    f: impl Fn(u32, &[u8]) -> T + Sync,
) -> Vec<Vec<T>> {
    let f = &f;
    std::thread::scope(|s| {
        let hs: Vec<_> = watchers
            .iter_mut()
            .map(|w| {
                s.spawn(move || {
                    let mut order = Vec::with_capacity(expect);
                    let deadline = Instant::now() + Duration::from_secs(60);
                    while order.len() < expect {
                        assert!(
                            Instant::now() < deadline,
                            "{} of {expect} delivered",
                            order.len()
                        );
                        if let Some(CpgEvent::Deliver { data, sender, .. }) =
                            w.dispatch(Some(Duration::from_secs(1))).expect("dispatch")
                        {
                            order.push(f(sender.pid, &data));
                        }
                    }
                    order
                })
            })
            .collect();
        hs.into_iter().map(|h| h.join().expect("watcher")).collect()
    })
}

/// Waits for a sender process; asserts it succeeded; returns its standard output.
fn sender_output(s: Child) -> String {
    let out = s.wait_with_output().expect("aisctl");
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "aisctl failed: {text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    text
}

/// 3 nodes, 3000 CPG messages from all of them (agreed and safe, up to 4 frames each) in the
/// same order everywhere; kill -9 of node 3 is reported as nodedown; its restart merges and
/// its new client learns the existing members; every node's event log passes the checker.
#[test]
fn cpg_order_failover_merge_and_checker() {
    let mut c = Cluster::loopback("cpg-order", 3, "");
    c.start_all();
    for i in 0..3 {
        c.wait_ring(i, &[1, 2, 3], LONG);
    }
    let mut clients: Vec<Cpg> = (0..3).map(|i| c.cpg(i)).collect();
    for cl in &mut clients {
        cl.join(GROUP).expect("join");
    }
    for cl in &mut clients {
        wait_confchg(cl, LONG, members(3));
    }
    let per = 1000;
    let (orders, _) = traffic(&mut clients, per, 3 * per as usize);
    assert_same_order(&orders, 3 * per as usize);

    // kill -9: the survivors' clients see node 3's process leave with reason nodedown.
    let victim_pid = clients[2]
        .membership(GROUP)
        .expect("membership")
        .into_iter()
        .find(|a| a.node == 3)
        .expect("node 3 member")
        .pid;
    c.kill(2);
    drop(clients.pop());
    for cl in &mut clients {
        let (ev, _) = wait_confchg(
            cl,
            LONG,
            |ev| matches!(ev, CpgEvent::ConfChg { left, .. } if !left.is_empty()),
        );
        let CpgEvent::ConfChg { left, members, .. } = ev else {
            unreachable!()
        };
        assert_eq!(
            left,
            vec![(
                CpgAddress {
                    node: 3,
                    pid: victim_pid
                },
                Reason::NodeDown
            )]
        );
        assert!(members.iter().all(|a| a.node != 3));
    }
    c.wait_ring(0, &[1, 2], LONG);

    // Restart: one ring again; the new client on node 3 sees every member.
    c.start(2);
    for i in 0..3 {
        c.wait_ring(i, &[1, 2, 3], LONG);
    }
    let mut back = c.cpg(2);
    back.join(GROUP).expect("join after restart");
    wait_confchg(&mut back, LONG, members(3));
    for cl in &mut clients {
        wait_confchg(
            cl,
            LONG,
            |ev| matches!(ev, CpgEvent::ConfChg { joined, .. } if joined.iter().any(|(a, r)| a.node == 3 && *r == Reason::Join)),
        );
    }
    clients.push(back);
    let (orders, _) = traffic(&mut clients, 100, 300);
    assert_same_order(&orders, 300);

    drop(clients);
    for i in 0..3 {
        c.terminate(i);
    }
    let report = c.check_logs();
    assert!(report.is_ok(), "{report}");
    assert_eq!(report.crashes, 1, "node 3's restart logged its crash");
    assert!(report.delivered >= 3 * 3300, "{report}");
}

/// With a send queue of one message Totem refuses most concurrent submits: six sender
/// processes (`aisctl cpg send`, three per node) get TRY_AGAIN and retry, and every message is
/// delivered exactly once, in one order, at a watcher on each node.
///
/// (CPG names a member by node and pid, so concurrent senders are separate processes: a
/// second join of one process to the same group is refused with SA_AIS_ERR_EXIST.)
#[test]
fn try_again_loses_nothing() {
    let mut c = Cluster::loopback("try-again", 2, "max_queued_messages = 1");
    c.start_all();
    c.wait_ring(0, &[1, 2], LONG);
    c.wait_ring(1, &[1, 2], LONG);
    let mut watchers = watchers(&c, 2);
    let per = 300;
    let senders = spawn_senders(&c, 6, per, 100, &[]);
    let expect = 6 * per as usize;
    let orders = collect(&mut watchers, expect, |pid, data| (pid, data.to_vec()));
    let mut try_again = 0u64;
    for s in senders {
        let text = sender_output(s);
        // "sent N messages ... (R msgs/s, K TRY_AGAIN answers); all delivered back ..."
        let k: u64 = text
            .split(" TRY_AGAIN")
            .next()
            .and_then(|t| t.rsplit(' ').next())
            .and_then(|n| n.parse().ok())
            .unwrap_or_else(|| panic!("no TRY_AGAIN count in {text:?}"));
        try_again += k;
    }
    assert!(
        try_again > 0,
        "the test needs TRY_AGAIN answers to mean anything"
    );
    let unique: HashSet<_> = orders[0].iter().collect();
    assert_eq!(unique.len(), expect, "every message exactly once");
    assert_eq!(orders[0], orders[1], "one order at both nodes");
    // The executives also count refused joins and leaves, which aisctl retries silently.
    let counted = c.counter(0, "ipc_try_again") + c.counter(1, "ipc_try_again");
    assert!(
        counted >= try_again,
        "executives counted {counted} refusals, senders saw {try_again}"
    );
    drop(watchers);
    for i in 0..2 {
        c.terminate(i);
    }
    let report = c.check_logs();
    assert!(report.is_ok(), "{report}");
}

/// A client process killed (SIGKILL) in the middle of sending: the group sees it leave with
/// reason procdown, and the executive holds nothing of it any more.
#[test]
fn client_killed_mid_send_leaves_no_trace() {
    let mut c = Cluster::loopback("dead-client", 2, "");
    c.start_all();
    c.wait_ring(0, &[1, 2], LONG);
    c.wait_ring(1, &[1, 2], LONG);
    let mut watcher = c.cpg(1);
    watcher.join(GROUP).expect("join");
    wait_confchg(&mut watcher, LONG, members(1));

    let mut sender = Command::new(env!("CARGO_BIN_EXE_aisctl"))
        .arg("--socket")
        .arg(&c.node(0).socket)
        .args([
            "cpg",
            "send",
            "orders",
            "--count",
            "100000000",
            "--size",
            "200",
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("aisctl");
    let pid = sender.id();
    let (ev, _) = wait_confchg(&mut watcher, LONG, members(2));
    assert!(
        matches!(ev, CpgEvent::ConfChg { joined, .. } if joined == vec![(CpgAddress { node: 1, pid }, Reason::Join)])
    );
    // Wait for its traffic, then kill it mid-stream.
    let deadline = Instant::now() + LONG;
    let mut got = 0;
    while got < 100 {
        assert!(
            Instant::now() < deadline,
            "only {got} messages from the sender"
        );
        if let Some(CpgEvent::Deliver { .. }) = watcher
            .dispatch(Some(Duration::from_secs(1)))
            .expect("dispatch")
        {
            got += 1;
        }
    }
    sender.kill().expect("kill");
    sender.wait().expect("wait");
    let (ev, _) = wait_confchg(
        &mut watcher,
        LONG,
        |ev| matches!(ev, CpgEvent::ConfChg { left, .. } if !left.is_empty()),
    );
    let CpgEvent::ConfChg { left, members, .. } = ev else {
        unreachable!()
    };
    assert_eq!(left, vec![(CpgAddress { node: 1, pid }, Reason::ProcDown)]);
    assert_eq!(members.len(), 1);
    // Node 1 keeps no member and no connection of it (the status connection is the only one).
    let deadline = Instant::now() + LONG;
    loop {
        let clients = c.counter(0, "ipc_clients");
        let local = c.counter(0, "cpg_local_members");
        if clients == 1 && local == 0 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "node 1 still holds {clients} clients, {local} members"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    assert_eq!(watcher.membership(GROUP).expect("membership").len(), 1);
}

/// A client that never reads its callbacks holds the senders (TRY_AGAIN) for the stall time
/// at most, then is disconnected once its outbox is full, and the group sees it leave
/// (procdown); the executive and the other clients carry on. The stuck client is `aisctl
/// cpg watch` with its output piped and never read: once the pipe is full it stops
/// dispatching. Outboxes of 1024 packets (`aisexec.ipc_outbox_packets`).
#[test]
fn stuck_client_is_disconnected() {
    let mut c = Cluster::loopback_aisexec("stuck-client", 1, "", "ipc_outbox_packets = 1024");
    c.start_all();
    c.wait_ring(0, &[1], LONG);
    let mut sender = c.cpg(0);
    sender.join(GROUP).expect("join");
    wait_confchg(&mut sender, LONG, members(1));
    let mut stuck = Command::new(env!("CARGO_BIN_EXE_aisctl"))
        .arg("--socket")
        .arg(&c.node(0).socket)
        .args(["cpg", "watch", "orders"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("aisctl");
    let stuck_pid = stuck.id();
    wait_confchg(&mut sender, LONG, members(2));
    let mut sent = 0u32;
    let mut try_again = 0u64;
    let mut left_seen = false;
    let deadline = Instant::now() + Duration::from_secs(90);
    let payload = [7u8; 1000];
    let batch: Vec<&[u8]> = vec![&payload; 16];
    while !left_seen {
        assert!(
            Instant::now() < deadline,
            "not disconnected after {sent} messages"
        );
        // The stall time (2 s) is well inside LONG: the stuck client holds the sender no
        // longer than that.
        try_again += sender
            .mcast_batch_retry(GROUP, Guarantee::Agreed, &batch, LONG)
            .expect("mcast");
        sent += batch.len() as u32;
        while let Some(ev) = sender.dispatch(Some(Duration::ZERO)).expect("dispatch") {
            if let CpgEvent::ConfChg { left, .. } = ev {
                assert_eq!(
                    left,
                    vec![(
                        CpgAddress {
                            node: 1,
                            pid: stuck_pid
                        },
                        Reason::ProcDown
                    )]
                );
                left_seen = true;
            }
        }
    }
    assert_eq!(c.counter(0, "ipc_overflow_disconnects"), 1);
    assert_eq!(c.counter(0, "outbox_stalls"), 1);
    assert!(c.counter(0, "outbox_backlogs") >= 1);
    assert!(try_again > 0, "the stuck client never held the sender");
    assert!(sent > 1024, "{sent} messages were enough?");
    // The sender is still served, and nothing holds it any more.
    sender
        .mcast_retry(GROUP, Guarantee::Agreed, b"still here", LONG)
        .expect("mcast after the disconnect");
    assert_eq!(c.counter(0, "outbox_backlogged"), 0);
    stuck.kill().expect("kill");
    stuck.wait().expect("wait");
}

/// A live client that reads more slowly than the ring delivers (a load generator on a
/// loaded machine) is not disconnected: a full-speed sender at the other node is answered
/// TRY_AGAIN while the slow reader's outbox is above the high-water mark, and the reader gets
/// every message once, in the order sent. Outboxes of 1024 packets (high water 64), so the
/// sender outruns the reader many times over. The sender's node queues at most 256 messages
/// in Totem: what it queued before the backlog reached it still arrives, and the headroom
/// between the high-water mark and the hard limit (960 packets) must hold it (with the
/// default 16 384 a loaded machine overflowed the 1024).
#[test]
fn slow_reader_holds_the_senders_and_gets_everything() {
    let mut c = Cluster::loopback_aisexec(
        "slow-reader",
        2,
        "max_queued_messages = 256",
        "ipc_outbox_packets = 1024",
    );
    c.start_all();
    c.wait_ring(0, &[1, 2], LONG);
    c.wait_ring(1, &[1, 2], LONG);
    let mut reader = c.cpg(0);
    reader.join(GROUP).expect("join");
    wait_confchg(&mut reader, LONG, members(1));
    const TOTAL: u32 = 12_000;
    let mut sender = c.cpg(1);
    sender.join(GROUP).expect("join");
    wait_confchg(&mut reader, LONG, members(2));
    let sending = std::thread::spawn(move || {
        let mut next = 0u32;
        while next < TOTAL {
            let msgs: Vec<Vec<u8>> = (next..(next + 64).min(TOTAL))
                .map(|i| {
                    let mut m = i.to_le_bytes().to_vec();
                    m.resize(256, 0xa5);
                    m
                })
                .collect();
            let refs: Vec<&[u8]> = msgs.iter().map(Vec::as_slice).collect();
            sender
                .mcast_batch_retry(GROUP, Guarantee::Agreed, &refs, Duration::from_secs(60))
                .expect("send");
            next += refs.len() as u32;
            // Its own deliveries: read them all (a fast reader).
            while sender
                .dispatch(Some(Duration::ZERO))
                .expect("dispatch")
                .is_some()
            {}
        }
        sender
    });
    // About 3 200 messages a second at most: 64, then a 20 ms nap.
    let mut got = 0u32;
    let deadline = Instant::now() + Duration::from_secs(120);
    while got < TOTAL {
        assert!(Instant::now() < deadline, "only {got} of {TOTAL} delivered");
        match reader
            .dispatch(Some(LONG))
            .expect("the slow reader was cut off")
        {
            Some(CpgEvent::Deliver { data, .. }) => {
                let i = u32::from_le_bytes(data[..4].try_into().expect("4 bytes"));
                assert_eq!(i, got, "out of order, lost or duplicated");
                got += 1;
                if got.is_multiple_of(64) {
                    std::thread::sleep(Duration::from_millis(20));
                }
            }
            Some(_) => {}
            None => panic!("nothing delivered for {LONG:?} after {got} messages"),
        }
    }
    let _sender = sending.join().expect("sender");
    assert_eq!(c.counter(0, "ipc_overflow_disconnects"), 0);
    assert!(c.counter(0, "outbox_backlogs") >= 1, "never backlogged");
    assert!(
        c.counter(1, "cpg_mcast_refused_backlogged") > 0,
        "the sender at the other node was never held"
    );
    // Drained: no one is held any more.
    let deadline = Instant::now() + LONG;
    while c.counter(1, "outbox_backlogged_nodes") + c.counter(0, "outbox_backlogged") > 0 {
        assert!(
            Instant::now() < deadline,
            "still backlogged after the drain"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(
        reader
            .dispatch(Some(Duration::from_millis(200)))
            .expect("dispatch")
            .is_none_or(|ev| !matches!(ev, CpgEvent::Deliver { .. })),
        "a message delivered twice"
    );
}

/// One IPC loop serves every client: twenty more connections add no thread to the executive
/// (`process_threads` in `aisctl status`), and all of them are served.
#[test]
fn clients_cost_no_threads() {
    let mut c = Cluster::loopback("threads", 1, "");
    c.start_all();
    c.wait_ring(0, &[1], LONG);
    let before = c.counter(0, "process_threads");
    assert!(before > 0, "process_threads is reported");
    // One process: CPG lets it join a group once, so each connection joins its own.
    let mut clients: Vec<Cpg> = (0..20).map(|_| c.cpg(0)).collect();
    for (i, cl) in clients.iter_mut().enumerate() {
        cl.join(format!("threads-{i}").as_bytes()).expect("join");
    }
    for cl in &mut clients {
        wait_confchg(
            cl,
            LONG,
            |ev| matches!(ev, CpgEvent::ConfChg { members, .. } if members.len() == 1),
        );
    }
    assert!(c.counter(0, "ipc_clients") >= 20);
    assert_eq!(
        c.counter(0, "process_threads"),
        before,
        "a client costs no thread"
    );
}

/// Garbage on the socket closes that connection only; a request before Hello is refused.
#[test]
fn malformed_packets_close_only_that_connection() {
    let mut c = Cluster::loopback("malformed", 1, "");
    c.start_all();
    c.wait_ring(0, &[1], LONG);
    let raw = SeqpacketConn::connect(&c.node(0).socket).expect("connect");
    let mut buf = vec![0u8; 4096];
    let before = Encoded::request(1, &Request::<Nothing>::Status).to_vec();
    raw.send(&[&before]).expect("send");
    assert_eq!(
        answer(&raw, &mut buf),
        (1, Reply::Error(AisError::BadOperation))
    );
    raw.send(&[b"\x01garbage that is not a packet"])
        .expect("send");
    assert_eq!(raw.recv(&mut buf).expect("recv"), Recv::Closed);
    // On a CPG connection: an operation CPG does not have is refused and the connection
    // stays; a CPG request whose body does not decode closes it and is counted.
    let cpg = SeqpacketConn::connect(&c.node(0).socket).expect("connect");
    let hello = Request::<Nothing>::Hello {
        version: VERSION,
        service: CpgProtocol::ID,
    };
    cpg.send(&[&Encoded::request(1, &hello).to_vec()])
        .expect("send");
    assert_eq!(answer(&cpg, &mut buf), (1, Reply::Ok));
    let mut unknown = Encoded::request(2, &Request::<Nothing>::Status).to_vec();
    unknown[2] = 99;
    cpg.send(&[&unknown]).expect("send");
    assert_eq!(
        answer(&cpg, &mut buf),
        (2, Reply::Error(AisError::BadOperation))
    );
    let join = Encoded::request(
        3,
        &Request::Service(CpgRequest::Join {
            group: bytes::Bytes::from_static(b"g"),
        }),
    )
    .to_vec();
    cpg.send(&[&join[..join.len() - 1]]).expect("send");
    assert_eq!(cpg.recv(&mut buf).expect("recv"), Recv::Closed);
    // A client of another protocol version is answered SA_AIS_ERR_VERSION under its request's
    // id, the executive's log names both versions, and the connection closes.
    let other = SeqpacketConn::connect(&c.node(0).socket).expect("connect");
    let mut hello = Encoded::request(
        7,
        &Request::<Nothing>::Hello {
            version: VERSION + 1,
            service: CpgProtocol::ID,
        },
    )
    .to_vec();
    hello[0] = VERSION + 1;
    other.send(&[&hello]).expect("send");
    assert_eq!(
        answer(&other, &mut buf),
        (7, Reply::Error(AisError::Version))
    );
    assert_eq!(other.recv(&mut buf).expect("recv"), Recv::Closed);
    let line = format!(
        "speaks IPC protocol version {}; this executive speaks version {VERSION}",
        VERSION + 1
    );
    let deadline = Instant::now() + LONG;
    while !c.log(0).contains(&line) {
        assert!(
            Instant::now() < deadline,
            "no log line `{line}`:\n{}",
            c.log(0)
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    // The executive still serves everyone else.
    let s = c.status(0).expect("status after garbage");
    assert_eq!(s.members, vec![1]);
    assert_eq!(c.counter(0, "ipc_malformed"), 1);
    // Every layer's statistics, each under its own name.
    let mut names: Vec<&[u8]> = s.counters.iter().map(|c| &c.name[..]).collect();
    let all = names.len();
    names.sort_unstable();
    names.dedup();
    assert_eq!(names.len(), all, "a statistic name appears twice");
    for layer in [
        "frames_in",
        "gathers",
        "invalid_digest",
        "driver_iterations",
        "ipc_clients",
        "cpg_groups",
    ] {
        assert!(names.contains(&layer.as_bytes()), "no {layer}");
    }
}

/// The next packet on `sock`, which must be an answer: (request id, answer).
fn answer(sock: &SeqpacketConn, buf: &mut [u8]) -> (u64, Reply<Nothing>) {
    let Recv::Packet(n) = sock.recv(buf).expect("recv") else {
        panic!("closed instead of answering")
    };
    let frame = Frame::decode(bytes::Bytes::copy_from_slice(&buf[..n])).expect("header");
    assert_eq!(frame.kind, Kind::Response);
    (frame.id, frame.body().expect("answer"))
}

/// EVS: messages reach the connections subscribed to one of their groups, on every node;
/// membership changes are node lists.
#[test]
fn evs_groups_and_membership() {
    let mut c = Cluster::loopback("evs", 2, "");
    c.start_all();
    c.wait_ring(0, &[1, 2], LONG);
    c.wait_ring(1, &[1, 2], LONG);
    let socket = |i: usize| c.node(i).socket.clone();
    let mut a1 = Evs::connect(&socket(0)).expect("evs");
    let mut b2 = Evs::connect(&socket(1)).expect("evs");
    let mut ab2 = Evs::connect(&socket(1)).expect("evs");
    a1.join(&[b"a"]).expect("join");
    b2.join(&[b"b"]).expect("join");
    ab2.join(&[b"a", b"b"]).expect("join");
    assert_eq!(a1.membership_get().expect("membership"), (1, vec![1, 2]));
    a1.mcast_groups(&[b"b"], Guarantee::Agreed, b"to b")
        .expect("mcast");
    b2.mcast_joined(Guarantee::Safe, b"from b2").expect("mcast");
    a1.mcast_joined(Guarantee::Agreed, b"to a").expect("mcast");
    let collect = |evs: &mut Evs, n: usize| {
        let mut got = Vec::new();
        let deadline = Instant::now() + LONG;
        while got.len() < n {
            assert!(Instant::now() < deadline, "got only {got:?}");
            if let Some(EvsEvent::Deliver { sender, data }) = evs
                .dispatch(Some(Duration::from_secs(1)))
                .expect("dispatch")
            {
                got.push((sender, data.to_vec()));
            }
        }
        // Nothing more arrives.
        assert!(!matches!(
            evs.dispatch(Some(Duration::from_millis(200)))
                .expect("dispatch"),
            Some(EvsEvent::Deliver { .. })
        ));
        got
    };
    // Sends from two nodes race: compare contents, and the relative order between receivers.
    assert_eq!(collect(&mut a1, 1), vec![(1, b"to a".to_vec())]);
    let only_b = collect(&mut b2, 2);
    let both = collect(&mut ab2, 3);
    let set = |v: &[(u32, Vec<u8>)]| v.iter().cloned().collect::<HashSet<_>>();
    assert_eq!(
        set(&only_b),
        set(&[(1, b"to b".to_vec()), (2, b"from b2".to_vec())])
    );
    assert_eq!(
        set(&both),
        set(&[
            (1, b"to b".to_vec()),
            (2, b"from b2".to_vec()),
            (1, b"to a".to_vec())
        ])
    );
    let both_b: Vec<_> = both
        .iter()
        .filter(|m| only_b.contains(m))
        .cloned()
        .collect();
    assert_eq!(both_b, only_b, "one total order for every receiver");
    // Node 2 stops: node 1's EVS connection gets the regular configuration without it.
    c.kill(1);
    let deadline = Instant::now() + LONG;
    loop {
        assert!(Instant::now() < deadline, "no configuration without node 2");
        if let Some(EvsEvent::ConfChg {
            kind: ais_proto::evs::ConfKind::Regular,
            members,
            left,
            ..
        }) = a1.dispatch(Some(Duration::from_secs(1))).expect("dispatch")
        {
            assert_eq!(members, vec![1]);
            assert_eq!(left, vec![2]);
            break;
        }
    }
}

/// Batched sends (`CpgMcastBatch`, `aisctl cpg send --batch`) under backpressure: Totem takes
/// a prefix of each batch, the sender sends the rest again, and every message is delivered
/// exactly once, in one order at every node, each sender's messages in the order it sent them.
#[test]
fn batched_senders_keep_their_order_under_backpressure() {
    let mut c = Cluster::loopback("batch", 2, "max_queued_messages = 8");
    c.start_all();
    c.wait_ring(0, &[1, 2], LONG);
    c.wait_ring(1, &[1, 2], LONG);
    let mut watchers = watchers(&c, 2);
    let per = 400;
    let senders = spawn_senders(&c, 4, per, 300, &["--batch", "32"]);
    let expect = 4 * per as usize;
    let orders = collect(&mut watchers, expect, |pid, data| {
        // "node/pid #i ...": the sender's message index.
        let text = String::from_utf8_lossy(data);
        let i: u64 = text
            .split('#')
            .nth(1)
            .and_then(|t| t.split(' ').next())
            .and_then(|n| n.parse().ok())
            .unwrap_or_else(|| panic!("no index in {text:?}"));
        (pid, i)
    });
    for s in senders {
        sender_output(s);
    }
    assert_eq!(orders[0], orders[1], "one order at both nodes");
    let unique: HashSet<_> = orders[0].iter().collect();
    assert_eq!(unique.len(), expect, "every message exactly once");
    // Per sender: 0, 1, 2, … in delivery order.
    let mut next: std::collections::HashMap<u32, u64> = std::collections::HashMap::new();
    for &(pid, i) in &orders[0] {
        let want = next.entry(pid).or_insert(0);
        assert_eq!(i, *want, "sender {pid} delivered out of order");
        *want += 1;
    }
    assert!(
        c.counter(0, "ipc_try_again") + c.counter(1, "ipc_try_again") > 0
            || c.counter(0, "backpressure") + c.counter(1, "backpressure") > 0,
        "the queue of 8 should have pushed back"
    );
    drop(watchers);
    for i in 0..2 {
        c.terminate(i);
    }
    let report = c.check_logs();
    assert!(report.is_ok(), "{report}");
}

/// The merge-time delivery from a non-member (issue 13): watchers on nodes 1 and 2, a sender
/// on node 3 (4 messages every 2 ms), node 3's executive paused with SIGSTOP for 0.2 to 1 s
/// (past the 100 ms token timeout) and resumed, twelve times. The sender pipelines its
/// requests, so those written during a pause reach Totem at once when node 3 runs again,
/// during the membership changes that end in the merge; the ones still queued then go out on
/// the merged ring before node 3's JOINLIST: no watcher may deliver one while its view of the
/// group does not include the sender.
#[test]
fn pause_and_merge_deliver_nothing_from_outside_the_view() {
    use nix::sys::signal::Signal;
    use std::sync::Arc;
    use std::sync::atomic::{AtomicBool, Ordering};

    let mut c = Cluster::loopback("pause-merge", 3, "");
    c.start_all();
    for i in 0..3 {
        c.wait_ring(i, &[1, 2, 3], LONG);
    }
    let stop = Arc::new(AtomicBool::new(false));
    let mut watchers = Vec::new();
    for i in 0..2 {
        let mut cpg = c.cpg(i);
        cpg.join(GROUP).expect("join");
        let stop = Arc::clone(&stop);
        watchers.push(std::thread::spawn(move || {
            let mut view: Vec<CpgAddress> = Vec::new();
            let (mut outside, mut from_3, mut node3_down) = (0u32, 0u32, 0u32);
            while !stop.load(Ordering::Relaxed) {
                match cpg
                    .dispatch(Some(Duration::from_millis(50)))
                    .expect("dispatch")
                {
                    Some(CpgEvent::ConfChg { members, left, .. }) => {
                        node3_down += left
                            .iter()
                            .filter(|(a, r)| a.node == 3 && *r == Reason::NodeDown)
                            .count() as u32;
                        view = members;
                    }
                    Some(CpgEvent::Deliver { sender, .. }) => {
                        if !view.contains(&sender) {
                            outside += 1;
                        }
                        if sender.node == 3 {
                            from_3 += 1;
                        }
                    }
                    None => {}
                }
            }
            (outside, from_3, node3_down)
        }));
    }
    // Node 3's sender writes its requests without waiting for the answers (a reader thread
    // drains answers and callbacks): while node 3's executive is stopped they wait in its
    // socket, and when it runs again they all reach Totem during the membership changes.
    let raw = Arc::new(SeqpacketConn::connect(&c.node(2).socket).expect("connect"));
    raw.set_buffer_sizes(1 << 20, 4 << 20).expect("buffers");
    let mut buf = vec![0u8; 1 << 17];
    for (id, req) in [
        (
            1,
            Request::Hello {
                version: VERSION,
                service: CpgProtocol::ID,
            },
        ),
        (
            2,
            Request::Service(CpgRequest::Join {
                group: bytes::Bytes::from_static(GROUP),
            }),
        ),
    ] {
        raw.send(&[&Encoded::request(id, &req).to_vec()])
            .expect("send");
        loop {
            let Recv::Packet(n) = raw.recv(&mut buf).expect("recv") else {
                panic!("closed")
            };
            let frame = Frame::decode(bytes::Bytes::copy_from_slice(&buf[..n])).expect("decode");
            if frame.kind == Kind::Response {
                assert_eq!(frame.id, id);
                let resp: Reply<Nothing> = frame.body().expect("answer");
                assert_eq!(resp, Reply::Ok);
                break;
            }
        }
    }
    let reading = Arc::clone(&stop);
    let rx = Arc::clone(&raw);
    let reader = std::thread::spawn(move || {
        while !reading.load(Ordering::Relaxed) {
            let _ = rx.recv_timeout(&mut buf, Some(Duration::from_millis(50)));
        }
    });
    let sending = Arc::clone(&stop);
    let sender = std::thread::spawn(move || {
        let mut n = 0u64;
        let mut id = 3u64;
        while !sending.load(Ordering::Relaxed) {
            let messages = (n..n + 4)
                .map(|i| bytes::Bytes::copy_from_slice(&i.to_le_bytes()))
                .collect();
            n += 4;
            let req = Request::Service(CpgRequest::McastBatch {
                group: bytes::Bytes::from_static(GROUP),
                guarantee: Guarantee::Agreed,
                messages,
            });
            raw.send(&[&Encoded::request(id, &req).to_vec()])
                .expect("send");
            id += 1;
            std::thread::sleep(Duration::from_millis(2));
        }
    });
    for pause in [200, 600, 300, 1000, 400, 800, 250, 500, 300, 700, 200, 400] {
        std::thread::sleep(Duration::from_millis(300));
        c.signal(2, Signal::SIGSTOP);
        std::thread::sleep(Duration::from_millis(pause));
        c.signal(2, Signal::SIGCONT);
        c.wait_ring(0, &[1, 2, 3], LONG);
    }
    std::thread::sleep(Duration::from_millis(500));
    stop.store(true, Ordering::Relaxed);
    sender.join().expect("sender");
    reader.join().expect("reader");
    let seen: Vec<(u32, u32, u32)> = watchers
        .into_iter()
        .map(|w| w.join().expect("watcher"))
        .collect();
    for (i, &(outside, from_3, node3_down)) in seen.iter().enumerate() {
        assert_eq!(
            outside,
            0,
            "node {}'s watcher delivered {outside} messages from outside its view \
             (outside deliveries per watcher: {:?})",
            i + 1,
            seen.iter().map(|s| s.0).collect::<Vec<_>>()
        );
        assert!(
            from_3 > 50,
            "node {}: only {from_3} messages from node 3",
            i + 1
        );
        assert!(
            node3_down >= 1,
            "node {}: node 3 was never reported down: the pauses did not split the ring",
            i + 1
        );
    }
    let dropped: u64 = (0..2)
        .map(|i| c.counter(i, "cpg_dropped_from_non_members"))
        .sum();
    eprintln!("messages from outside the view dropped at nodes 1 and 2: {dropped}");
}
