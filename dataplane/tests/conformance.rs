//! The `Transport` conformance suite: one generic function per property of the contract (see
//! the `dataplane` crate documentation), instantiated for every backend at the bottom of this
//! file:
//!
//! - `udp_unicast_v4`: `UdpTransport` in unicast (`udpu`) mode on 127.0.0.1;
//! - `udp_multicast_v4`: `UdpTransport` in multicast mode on 127.0.0.1, a 239.255.42.x group
//!   joined on the loopback interface with `IP_MULTICAST_LOOP` on;
//! - `udp_unicast_v6`: `UdpTransport` in unicast mode on ::1;
//! - `mem`: `MemTransport` on a `MemNetwork`;
//! - `any_udp`: `UdpTransport` in unicast mode behind `any::AnyTransport` (the type of a node
//!   whose networks mix backends).
//!
//! Assumptions: the loopback interface is up with 127.0.0.1 and ::1 (IPv4 multicast on `lo`
//! works without its MULTICAST flag on Linux); no root, no network namespaces, no other
//! interface. Every socket binds port 0 (the multicast group port too: the first node's
//! kernel-chosen port is given to the others), so runs in parallel do not collide. Nothing
//! depends on timing beyond generous waits: receivers `wait` and loop until the expected
//! frames arrived or 5 s passed. Checks that something does *not* arrive wait a further
//! 100 ms; a slow machine could only make them pass wrongly, never fail wrongly. Oversized
//! frames are followed by a small sentinel on the same path, so "not delivered" is checked
//! once the sentinel arrived.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, UdpSocket};
use std::sync::atomic::{AtomicU8, Ordering};
use std::time::{Duration, Instant};

use dataplane::any::AnyTransport;
use dataplane::mem::{MemConfig, MemNetwork, MemTransport};
use dataplane::udp::{Mode, UdpConfig, UdpTransport};
use dataplane::{Dest, Member, MembersError, NodeId, SendError, Source, Transport};

/// How long a receiver waits for frames that should arrive.
const PATIENCE: Duration = Duration::from_secs(5);
/// How long a receiver keeps listening for frames that should not arrive.
const SETTLE: Duration = Duration::from_millis(100);
const DEFAULT_MTU: usize = 1472;
const DEFAULT_BURST: usize = 32;
const JUMBO_MTU: usize = 8972;

/// Nodes under test, plus two ways in for frames from outside the member list.
struct Cluster<T> {
    /// `nodes[i]` is `members[i]` (node id `i + 1`); every node has the full member list.
    nodes: Vec<T>,
    members: Vec<Member>,
    /// A transport of the same backend that no node knows, with an MTU larger than the
    /// nodes' and the nodes' member list: it can reach them with `Dest::Ring` and `Dest::Node`.
    stranger: T,
    stranger_addr: SocketAddr,
    /// Raw datagrams from outside (a std `UdpSocket`, or `MemNetwork::inject`).
    raw: Raw,
}

enum Raw {
    Udp(UdpSocket),
    Mem { net: MemNetwork, from: SocketAddr },
}

impl Raw {
    fn addr(&self) -> SocketAddr {
        match self {
            Raw::Udp(s) => s.local_addr().unwrap(),
            Raw::Mem { from, .. } => *from,
        }
    }

    fn send(&self, to: SocketAddr, frame: &[u8]) {
        match self {
            Raw::Udp(s) => assert_eq!(s.send_to(frame, to).unwrap(), frame.len()),
            Raw::Mem { net, from } => assert!(net.inject(*from, to, frame)),
        }
    }
}

/// A backend under test.
trait Backend {
    type T: Transport;
    /// `n` nodes with this MTU and burst, their member lists set.
    fn cluster(n: usize, mtu: usize, burst: usize) -> Cluster<Self::T>;
}

struct UdpUnicastV4;
struct UdpMulticastV4;
struct UdpUnicastV6;
struct Mem;
/// Kernel UDP unicast behind `any::AnyTransport` (the type a node mixing backends uses).
struct AnyUdp;

fn lo4() -> SocketAddr {
    (Ipv4Addr::LOCALHOST, 0).into()
}

fn lo6() -> SocketAddr {
    (Ipv6Addr::LOCALHOST, 0).into()
}

/// Builds a UDP cluster; `config(port)` gives a node's configuration, `port` being the group
/// port the first node got (0 for the first node itself).
fn udp_cluster(
    n: usize,
    mtu: usize,
    burst: usize,
    config: impl Fn(u16) -> UdpConfig,
) -> Cluster<UdpTransport> {
    let mut port = 0;
    let mut nodes = Vec::new();
    for _ in 0..n {
        let t = UdpTransport::new(UdpConfig {
            mtu,
            burst,
            ..config(port)
        })
        .expect("open a UDP transport on loopback");
        if let Some(group) = t.group_addr() {
            port = group.port();
        }
        nodes.push(t);
    }
    let members = member_list(nodes.iter().map(UdpTransport::local_addr));
    for t in &mut nodes {
        t.set_members(&members).unwrap();
    }
    let base = config(port);
    let max_mtu = if base.bind.is_ipv6() {
        UdpConfig::MAX_MTU_V6
    } else {
        UdpConfig::MAX_MTU_V4
    };
    let mut stranger = UdpTransport::new(UdpConfig {
        mtu: max_mtu,
        burst: 4,
        ..base
    })
    .unwrap();
    stranger.set_members(&members).unwrap();
    let raw = UdpSocket::bind(SocketAddr::new(base.bind.ip(), 0)).unwrap();
    Cluster {
        nodes,
        members,
        stranger_addr: stranger.local_addr(),
        stranger,
        raw: Raw::Udp(raw),
    }
}

fn member_list(addrs: impl Iterator<Item = SocketAddr>) -> Vec<Member> {
    addrs
        .enumerate()
        .map(|(i, addr)| Member {
            id: NodeId(i as u32 + 1),
            addr,
        })
        .collect()
}

impl Backend for UdpUnicastV4 {
    type T = UdpTransport;
    fn cluster(n: usize, mtu: usize, burst: usize) -> Cluster<UdpTransport> {
        udp_cluster(n, mtu, burst, |_| UdpConfig::unicast(lo4()))
    }
}

impl Backend for UdpUnicastV6 {
    type T = UdpTransport;
    fn cluster(n: usize, mtu: usize, burst: usize) -> Cluster<UdpTransport> {
        udp_cluster(n, mtu, burst, |_| UdpConfig::unicast(lo6()))
    }
}

impl Backend for UdpMulticastV4 {
    type T = UdpTransport;
    fn cluster(n: usize, mtu: usize, burst: usize) -> Cluster<UdpTransport> {
        // A group per cluster in this process; the kernel-chosen port keeps other processes
        // (other test runs on this host) apart.
        static NEXT: AtomicU8 = AtomicU8::new(1);
        let group = IpAddr::V4(Ipv4Addr::new(
            239,
            255,
            42,
            NEXT.fetch_add(1, Ordering::Relaxed),
        ));
        udp_cluster(n, mtu, burst, |port| UdpConfig {
            mode: Mode::Multicast {
                group,
                port,
                ttl: 1,
                loopback: true,
                interface: Some(Ipv4Addr::LOCALHOST.into()),
            },
            ..UdpConfig::unicast(lo4())
        })
    }
}

impl Backend for AnyUdp {
    type T = AnyTransport;
    fn cluster(n: usize, mtu: usize, burst: usize) -> Cluster<AnyTransport> {
        let c = UdpUnicastV4::cluster(n, mtu, burst);
        Cluster {
            nodes: c.nodes.into_iter().map(AnyTransport::from).collect(),
            members: c.members,
            stranger: c.stranger.into(),
            stranger_addr: c.stranger_addr,
            raw: c.raw,
        }
    }
}

impl Backend for Mem {
    type T = MemTransport;
    fn cluster(n: usize, mtu: usize, burst: usize) -> Cluster<MemTransport> {
        let net = MemNetwork::new();
        let config = MemConfig {
            mtu,
            burst,
            queue_frames: 256,
        };
        let mut nodes: Vec<MemTransport> = (1..=n as u32)
            .map(|i| net.attach_node(NodeId(i), config).unwrap())
            .collect();
        let members = member_list(nodes.iter().map(MemTransport::local_addr));
        for t in &mut nodes {
            t.set_members(&members).unwrap();
        }
        let stranger_addr: SocketAddr = "[fd01::1]:5405".parse().unwrap();
        let mut stranger = net
            .attach(
                stranger_addr,
                MemConfig {
                    mtu: 2 * mtu,
                    burst: 4,
                    queue_frames: 4,
                },
            )
            .unwrap();
        stranger.set_members(&members).unwrap();
        Cluster {
            nodes,
            members,
            stranger,
            stranger_addr,
            raw: Raw::Mem {
                net,
                from: "[fd01::2]:5405".parse().unwrap(),
            },
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Frames and receiving.

/// A test frame: sender index and sequence number, then a pattern derived from both.
fn pattern(sender: u32, seq: u32, i: usize) -> u8 {
    (sender as usize * 31 + seq as usize * 7 + i) as u8
}

fn write_frame(buf: &mut [u8], sender: u32, seq: u32) {
    buf[..4].copy_from_slice(&sender.to_le_bytes());
    buf[4..8].copy_from_slice(&seq.to_le_bytes());
    for (i, b) in buf.iter_mut().enumerate().skip(8) {
        *b = pattern(sender, seq, i);
    }
}

fn frame(sender: u32, seq: u32, len: usize) -> Vec<u8> {
    let mut v = vec![0; len];
    write_frame(&mut v, sender, seq);
    v
}

/// Checks the pattern and returns (sender, seq).
fn check_frame(f: &[u8]) -> (u32, u32) {
    assert!(f.len() >= 8, "frame of {} bytes", f.len());
    let sender = u32::from_le_bytes(f[..4].try_into().unwrap());
    let seq = u32::from_le_bytes(f[4..8].try_into().unwrap());
    for (i, &b) in f.iter().enumerate().skip(8) {
        assert_eq!(
            b,
            pattern(sender, seq, i),
            "byte {i} of frame {sender}/{seq}"
        );
    }
    (sender, seq)
}

fn send_frame<T: Transport>(t: &mut T, dest: Dest, sender: u32, seq: u32, len: usize) {
    t.send(dest, len, |buf| write_frame(buf, sender, seq))
        .unwrap_or_else(|e| panic!("send {sender}/{seq} of {len} bytes to {dest:?}: {e}"));
}

type Received = Vec<(Source, Vec<u8>)>;

/// Receives until `want` frames arrived or [`PATIENCE`] passed.
fn collect<T: Transport>(t: &mut T, want: usize) -> Received {
    let mut got = Vec::new();
    let deadline = Instant::now() + PATIENCE;
    loop {
        let max = t.caps().max_burst;
        let before = got.len();
        let n = t.recv_burst(|s, f| got.push((s, f.to_vec()))).unwrap();
        assert_eq!(
            n,
            got.len() - before,
            "recv_burst returns what it delivered"
        );
        assert!(n <= max, "recv_burst delivered {n} > max_burst {max}");
        let now = Instant::now();
        if got.len() >= want || now >= deadline {
            return got;
        }
        t.wait(Some((deadline - now).min(Duration::from_millis(100))))
            .unwrap();
    }
}

/// [`collect`], then listens [`SETTLE`] longer for frames that should not come.
fn collect_exact<T: Transport>(t: &mut T, want: usize) -> Received {
    let mut got = collect(t, want);
    let end = Instant::now() + SETTLE;
    loop {
        t.recv_burst(|s, f| got.push((s, f.to_vec()))).unwrap();
        let now = Instant::now();
        if now >= end {
            break;
        }
        t.wait(Some(end - now)).unwrap();
    }
    assert_eq!(got.len(), want, "expected exactly {want} frames");
    got
}

/// Receives until a frame with each of the `sentinels` as its sequence number arrived;
/// returns the other frames.
fn until_sentinels<T: Transport>(t: &mut T, sentinels: &[u32]) -> Received {
    let mut got: Received = Vec::new();
    let mut seen = Vec::new();
    let deadline = Instant::now() + PATIENCE;
    loop {
        t.recv_burst(|s, f| {
            let seq = check_frame(f).1;
            if sentinels.contains(&seq) {
                seen.push(seq);
            } else {
                got.push((s, f.to_vec()));
            }
        })
        .unwrap();
        if sentinels.iter().all(|s| seen.contains(s)) {
            return got;
        }
        let now = Instant::now();
        assert!(
            now < deadline,
            "sentinels {sentinels:?} did not all arrive: {seen:?}"
        );
        t.wait(Some((deadline - now).min(Duration::from_millis(100))))
            .unwrap();
    }
}

// ---------------------------------------------------------------------------------------------
// Properties.

/// Each node sends one ring frame: every other node gets it exactly once, the sender never,
/// and the source is resolved to the sender.
fn ring_send_reaches_every_other_member_once<B: Backend>() {
    let n = 4;
    let mut c = B::cluster(n, DEFAULT_MTU, DEFAULT_BURST);
    for (i, t) in c.nodes.iter_mut().enumerate() {
        send_frame(t, Dest::Ring, i as u32, 0, 100);
        t.flush().unwrap();
    }
    for (j, t) in c.nodes.iter_mut().enumerate() {
        let got = collect_exact(t, n - 1);
        let mut senders: Vec<u32> = got
            .iter()
            .map(|(src, f)| {
                let (sender, _) = check_frame(f);
                let m = c.members[sender as usize];
                assert_eq!(
                    src.node,
                    Some(m.id),
                    "node {j}: source of frame from {sender}"
                );
                assert_eq!(src.addr, m.addr);
                sender
            })
            .collect();
        senders.sort_unstable();
        let others: Vec<u32> = (0..n as u32).filter(|&s| s != j as u32).collect();
        assert_eq!(senders, others, "node {j} got ring frames from");
        let stats = t.stats();
        assert_eq!(stats.frames_in, 3);
        assert_eq!(stats.bytes_in, 300);
        assert_eq!(stats.unknown_sources, 0);
    }
    assert!(c.nodes[0].stats().frames_out >= 1);
}

/// A node send reaches that node only.
fn node_send_reaches_only_that_node<B: Backend>() {
    let mut c = B::cluster(3, DEFAULT_MTU, DEFAULT_BURST);
    let to = c.members[2].id;
    send_frame(&mut c.nodes[0], Dest::Node(to), 0, 7, 64);
    c.nodes[0].flush().unwrap();
    let got = collect_exact(&mut c.nodes[2], 1);
    assert_eq!(check_frame(&got[0].1), (0, 7));
    assert_eq!(got[0].0.node, Some(c.members[0].id));
    assert_eq!(c.nodes[0].stats().frames_out, 1);
    collect_exact(&mut c.nodes[1], 0);
    collect_exact(&mut c.nodes[0], 0);
}

/// A full burst of frames of varied lengths, sent with one flush, arrives intact and in order,
/// to a node and to the ring.
fn burst_arrives_intact_and_in_order<B: Backend>() {
    let mut c = B::cluster(2, DEFAULT_MTU, DEFAULT_BURST);
    let to = c.members[1].id;
    for (round, dest) in [Dest::Node(to), Dest::Ring].into_iter().enumerate() {
        let len = |seq: usize| 8 + (seq * 97 + round * 13) % (DEFAULT_MTU - 7);
        for seq in 0..DEFAULT_BURST {
            send_frame(&mut c.nodes[0], dest, 0, seq as u32, len(seq));
        }
        c.nodes[0].flush().unwrap();
        let got = collect_exact(&mut c.nodes[1], DEFAULT_BURST);
        for (seq, (src, f)) in got.iter().enumerate() {
            assert_eq!(check_frame(f), (0, seq as u32), "{dest:?}: order");
            assert_eq!(f.len(), len(seq), "{dest:?}: length of frame {seq}");
            assert_eq!(src.node, Some(c.members[0].id));
        }
    }
}

/// A frame of exactly the MTU arrives; `send` refuses one byte more; a larger frame arriving
/// from outside (raw datagram to the node, stranger's ring frame) is dropped and counted as
/// truncated, never delivered cut short.
fn exact_mtu_arrives_and_larger_is_dropped<B: Backend>(mtu: usize) {
    let mut c = B::cluster(2, mtu, 8);
    let id1 = c.members[1].id;
    assert_eq!(c.nodes[0].caps().mtu, mtu);

    send_frame(&mut c.nodes[0], Dest::Node(id1), 0, 1, mtu);
    send_frame(&mut c.nodes[1], Dest::Ring, 1, 2, mtu);
    c.nodes[0].flush().unwrap();
    c.nodes[1].flush().unwrap();
    let got = collect_exact(&mut c.nodes[1], 1);
    assert_eq!((got[0].1.len(), check_frame(&got[0].1)), (mtu, (0, 1)));
    let got = collect_exact(&mut c.nodes[0], 1);
    assert_eq!((got[0].1.len(), check_frame(&got[0].1)), (mtu, (1, 2)));

    let err = c.nodes[0]
        .send(Dest::Node(id1), mtu + 1, |_| panic!("fill called"))
        .unwrap_err();
    assert!(matches!(err, SendError::TooLarge { len, mtu: m } if len == mtu + 1 && m == mtu));

    // Raw datagram of mtu + 1 bytes to node 1, then a sentinel on the same path.
    c.raw.send(c.members[1].addr, &frame(9, 0, mtu + 1));
    c.raw.send(c.members[1].addr, &frame(9, 1000, 16));
    // The stranger's ring frame of mtu + 1 bytes reaches both nodes, then its sentinel.
    send_frame(&mut c.stranger, Dest::Ring, 8, 0, mtu + 1);
    send_frame(&mut c.stranger, Dest::Ring, 8, 1001, 16);
    c.stranger.flush().unwrap();

    // The two paths may interleave, so wait for both sentinels; nothing else may arrive.
    let other = until_sentinels(&mut c.nodes[1], &[1000, 1001]);
    assert!(other.is_empty(), "a truncated frame was delivered");
    assert_eq!(c.nodes[1].stats().rx_truncated, 2);
    let other = until_sentinels(&mut c.nodes[0], &[1001]);
    assert!(other.is_empty(), "a truncated frame was delivered");
    assert_eq!(c.nodes[0].stats().rx_truncated, 1);
}

fn default_mtu_frame_arrives_and_larger_is_dropped<B: Backend>() {
    exact_mtu_arrives_and_larger_is_dropped::<B>(DEFAULT_MTU);
}

/// Jumbo frames: the whole suite of MTU checks at 8972 bytes, and a burst of them.
fn jumbo_mtu_8972_works<B: Backend>() {
    exact_mtu_arrives_and_larger_is_dropped::<B>(JUMBO_MTU);
    let mut c = B::cluster(2, JUMBO_MTU, 8);
    for seq in 0..8 {
        send_frame(&mut c.nodes[0], Dest::Ring, 0, seq, JUMBO_MTU);
    }
    c.nodes[0].flush().unwrap();
    let got = collect_exact(&mut c.nodes[1], 8);
    for (seq, (_, f)) in got.iter().enumerate() {
        assert_eq!((f.len(), check_frame(f)), (JUMBO_MTU, (0, seq as u32)));
    }
}

/// There is no auto-flush: `max_burst` sends queue, the next is `TxFull` (without calling
/// `fill`), and a flush frees the slots. A unicast ring send to several peers takes one slot.
fn tx_full_until_flush<B: Backend>() {
    let burst = 4;
    let mut c = B::cluster(3, DEFAULT_MTU, burst);
    assert_eq!(c.nodes[0].caps().max_burst, burst);
    for seq in 0..burst as u32 {
        send_frame(&mut c.nodes[0], Dest::Ring, 0, seq, 32);
    }
    let err = c.nodes[0]
        .send(Dest::Ring, 32, |_| panic!("fill called on a full queue"))
        .unwrap_err();
    assert!(matches!(err, SendError::TxFull), "{err:?}");
    let err = c.nodes[0]
        .send(Dest::Node(c.members[1].id), 32, |_| panic!("fill called"))
        .unwrap_err();
    assert!(matches!(err, SendError::TxFull), "{err:?}");
    c.nodes[0].flush().unwrap();
    send_frame(&mut c.nodes[0], Dest::Ring, 0, burst as u32, 32);
    c.nodes[0].flush().unwrap();
    c.nodes[0].flush().unwrap(); // flushing an empty queue is fine
    for t in &mut c.nodes[1..] {
        let got = collect_exact(t, burst + 1);
        let seqs: Vec<u32> = got.iter().map(|(_, f)| check_frame(f).1).collect();
        assert_eq!(seqs, (0..=burst as u32).collect::<Vec<_>>());
    }
}

/// `Source::node` is the member for members and `None` for strangers (counted), and follows
/// the member list.
fn source_resolves_members_and_not_strangers<B: Backend>() {
    let mut c = B::cluster(2, DEFAULT_MTU, DEFAULT_BURST);
    let (id0, id1) = (c.members[0].id, c.members[1].id);
    let to = c.members[0].addr;

    c.raw.send(to, &frame(7, 0, 40));
    let got = collect(&mut c.nodes[0], 1);
    assert_eq!(
        got[0].0,
        Source {
            node: None,
            addr: c.raw.addr()
        }
    );
    assert_eq!(check_frame(&got[0].1), (7, 0));

    send_frame(&mut c.stranger, Dest::Node(id0), 8, 0, 40);
    c.stranger.flush().unwrap();
    let got = collect(&mut c.nodes[0], 1);
    assert_eq!(
        got[0].0,
        Source {
            node: None,
            addr: c.stranger_addr
        }
    );

    send_frame(&mut c.nodes[1], Dest::Node(id0), 1, 0, 40);
    c.nodes[1].flush().unwrap();
    let got = collect(&mut c.nodes[0], 1);
    assert_eq!(got[0].0.node, Some(id1));
    assert_eq!(c.nodes[0].stats().unknown_sources, 2);

    // Once the stranger is a member, its frames resolve.
    let mut members = c.members.clone();
    members.push(Member {
        id: NodeId(99),
        addr: c.stranger_addr,
    });
    c.nodes[0].set_members(&members).unwrap();
    send_frame(&mut c.stranger, Dest::Node(id0), 8, 1, 40);
    c.stranger.flush().unwrap();
    let got = collect(&mut c.nodes[0], 1);
    assert_eq!(got[0].0.node, Some(NodeId(99)));
    assert_eq!(c.nodes[0].stats().unknown_sources, 2);
}

/// Unknown destinations and bad member lists are refused without side effects.
fn refusals_leave_no_trace<B: Backend>() {
    let mut c = B::cluster(2, DEFAULT_MTU, DEFAULT_BURST);
    let err = c.nodes[0]
        .send(Dest::Node(NodeId(999)), 10, |_| panic!("fill called"))
        .unwrap_err();
    assert!(matches!(err, SendError::Unknown(NodeId(999))), "{err:?}");
    let dup = [c.members[0], c.members[0]];
    assert_eq!(
        c.nodes[0].set_members(&dup),
        Err(MembersError::DuplicateNode(c.members[0].id))
    );
    // The old list is still in force.
    send_frame(&mut c.nodes[0], Dest::Node(c.members[1].id), 0, 0, 10);
    c.nodes[0].flush().unwrap();
    collect_exact(&mut c.nodes[1], 1);
    assert_eq!(c.nodes[0].stats().frames_out, 1);
}

/// `wait` returns by its timeout when nothing arrives, and at once when a frame is waiting.
fn wait_honours_timeout_and_readiness<B: Backend>() {
    let mut c = B::cluster(2, DEFAULT_MTU, DEFAULT_BURST);
    let start = Instant::now();
    c.nodes[1].wait(Some(Duration::from_millis(10))).unwrap();
    assert!(start.elapsed() < PATIENCE);
    send_frame(&mut c.nodes[0], Dest::Ring, 0, 0, 10);
    c.nodes[0].flush().unwrap();
    let got = collect(&mut c.nodes[1], 1);
    assert_eq!(got.len(), 1);
    // Readiness: a frame sent now makes a long wait return early.
    send_frame(&mut c.nodes[0], Dest::Ring, 0, 1, 10);
    c.nodes[0].flush().unwrap();
    let start = Instant::now();
    c.nodes[1].wait(Some(PATIENCE * 2)).unwrap();
    assert!(start.elapsed() < PATIENCE, "wait ignored a waiting frame");
}

macro_rules! conformance {
    ($($module:ident: $backend:ident),* $(,)?) => {$(
        mod $module {
            conformance!(@tests $backend;
                ring_send_reaches_every_other_member_once,
                node_send_reaches_only_that_node,
                burst_arrives_intact_and_in_order,
                default_mtu_frame_arrives_and_larger_is_dropped,
                jumbo_mtu_8972_works,
                tx_full_until_flush,
                source_resolves_members_and_not_strangers,
                refusals_leave_no_trace,
                wait_honours_timeout_and_readiness,
            );
        }
    )*};
    (@tests $backend:ident; $($test:ident),* $(,)?) => {$(
        #[test]
        fn $test() {
            super::$test::<super::$backend>();
        }
    )*};
}

conformance! {
    udp_unicast_v4: UdpUnicastV4,
    udp_multicast_v4: UdpMulticastV4,
    udp_unicast_v6: UdpUnicastV6,
    mem: Mem,
    any_udp: AnyUdp,
}
