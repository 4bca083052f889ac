//! The DPDK `Transport` on a real DPDK, over the `net_ring` virtual device (its TX queue
//! feeds its own RX queue, so every frame a transport sends comes back to it).
//!
//! EAL can be initialised once per process, so every DPDK scenario is in ONE `#[test]`,
//! run in order. Since own frames are normally dropped, the looped-back transport is created
//! with `DpdkConfig::accept_own`; a second transport on the same port (after the first is
//! dropped, which stops the port) checks the own-frame filter with it off.
//!
//! Assumes DPDK >= 22.11 with its PMD plugins, and permission to lock memory (root). No
//! hugepages (`--no-huge`), one lcore, no busy polling: safe on a 2-core machine.

#![cfg(feature = "dpdk")]

use std::net::SocketAddr;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::time::{Duration, Instant};

use dataplane::dpdk::{self, DpdkConfig, DpdkError, DpdkTransport};
use dataplane::{Dest, Member, NodeId, SendError, Source, Transport};

fn eal_args() -> Vec<String> {
    [
        "--no-huge",
        "-m",
        "256",
        "--no-pci",
        "--no-shconf",
        "--no-telemetry",
        "-l",
        "0",
        "--log-level=lib.eal:warning",
        "--vdev=net_ring0",
    ]
    .iter()
    .map(|s| (*s).to_owned())
    .collect()
}

/// The calling thread's `Cpus_allowed_list` (e.g. "0-1").
fn allowed_cpus() -> String {
    std::fs::read_to_string("/proc/thread-self/status")
        .expect("/proc/thread-self/status")
        .lines()
        .find_map(|l| l.strip_prefix("Cpus_allowed_list:"))
        .expect("Cpus_allowed_list in /proc/thread-self/status")
        .trim()
        .to_owned()
}

fn members(ids: &[u32]) -> Vec<Member> {
    // The address does not apply to Ethernet: the same dummy for everybody must be accepted.
    let addr: SocketAddr = "0.0.0.0:0".parse().unwrap();
    ids.iter()
        .map(|&id| Member {
            id: NodeId(id),
            addr,
        })
        .collect()
}

fn pattern(len: usize, seed: u8) -> Vec<u8> {
    (0..len)
        .map(|i| (i as u8).wrapping_mul(31).wrapping_add(seed))
        .collect()
}

/// Everything `recv_burst` delivers until it returns 0 (a few empty polls allowed, in case a
/// vdev is slower than net_ring).
fn drain(t: &mut DpdkTransport) -> Vec<(Source, Vec<u8>)> {
    let mut got = Vec::new();
    let mut empty = 0;
    while empty < 3 {
        let n = t
            .recv_burst(|src, data| got.push((src, data.to_vec())))
            .unwrap();
        if n == 0 {
            empty += 1;
        }
    }
    got
}

fn send(t: &mut DpdkTransport, dest: Dest, payload: &[u8]) -> Result<(), SendError> {
    t.send(dest, payload.len(), |buf| buf.copy_from_slice(payload))
}

#[test]
fn dpdk_transport_over_net_ring() {
    let cpus_before = allowed_cpus();
    // Before EAL: lookups fail clearly, a bad config is refused without touching EAL.
    assert!(matches!(
        dpdk::port_by_name("net_ring0"),
        Err(DpdkError::EalNotReady)
    ));
    let mut bad = DpdkConfig::new(eal_args(), 0, NodeId(1));
    bad.mtu = 9001;
    assert!(matches!(DpdkTransport::new(bad), Err(DpdkError::Config(_))));

    dpdk::init_eal(&eal_args()).expect("EAL init");
    // EAL pinned this thread to lcore 0 (`-l 0`) during its init; the mask is put back, so
    // threads created later are not all crammed onto one core with the Totem thread.
    assert_eq!(
        allowed_cpus(),
        cpus_before,
        "this thread's CPU mask after EAL init"
    );
    // A second init (other arguments) reuses the first.
    dpdk::init_eal(&["--bogus".to_owned()]).expect("EAL init is reused");
    let port = dpdk::port_by_name("net_ring0").expect("net_ring0 port");
    assert!(matches!(
        dpdk::port_by_name("net_nothing9"),
        Err(DpdkError::PortName { .. })
    ));
    let err = DpdkTransport::new(DpdkConfig::new(eal_args(), 7, NodeId(1))).unwrap_err();
    let msg = err.to_string();
    assert!(
        matches!(err, DpdkError::PortNotFound { port: 7, .. }) && msg.contains("net_ring0"),
        "{msg}"
    );

    let mut cfg = DpdkConfig::new(eal_args(), port, NodeId(1));
    cfg.mtu = 8972;
    cfg.burst = 8;
    cfg.mbufs = 511;
    cfg.rx_ring = 256;
    cfg.tx_ring = 256;
    cfg.accept_own = true;
    let mut t = DpdkTransport::new(cfg).expect("transport on net_ring0");
    let caps = t.caps();
    assert_eq!((caps.mtu, caps.max_burst), (8972, 8));
    let initial = t.mbufs_available();
    assert!(initial > 0);
    t.set_members(&members(&[1, 2])).unwrap();
    assert!(drain(&mut t).is_empty());

    // Round trip of ring and node frames, from a single byte to a jumbo frame (one segment).
    let mut expect_in = 0u64;
    let mut expect_bytes = 0u64;
    for (k, len) in [1usize, 100, 1472, 8972].into_iter().enumerate() {
        let ring = pattern(len, k as u8);
        let node = pattern(len, 100 + k as u8);
        send(&mut t, Dest::Ring, &ring).unwrap();
        send(&mut t, Dest::Node(NodeId(1)), &node).unwrap();
        t.flush().unwrap();
        let got = drain(&mut t);
        assert_eq!(got.len(), 2, "len {len}");
        assert_eq!(got[0].0.node, Some(NodeId(1)));
        assert_eq!(got[0].1, ring, "ring frame of {len} bytes");
        assert_eq!(got[1].0.node, Some(NodeId(1)));
        assert_eq!(got[1].1, node, "node frame of {len} bytes");
        expect_in += 2;
        expect_bytes += 2 * len as u64;
    }
    // Our MAC was learned from our frames: node frames to 1 now go unicast, and still arrive.
    assert_eq!(t.member_mac(NodeId(1)), Some(t.mac()));
    assert_eq!(t.member_mac(NodeId(2)), None);
    // Ring frames stay on the multicast MAC: the one other member's MAC is not known (our
    // own does not count).
    assert_eq!(t.ring_destination(), None);
    assert_eq!(t.dpdk_stats().tx_ring_unicast, 0);
    let s = t.stats();
    assert_eq!((s.frames_in, s.bytes_in), (expect_in, expect_bytes));
    assert_eq!((s.frames_out, s.bytes_out), (expect_in, expect_bytes));
    assert_eq!((s.unknown_sources, s.rx_truncated, s.tx_errors), (0, 0, 0));

    // A node frame for node 2 comes back to us and is dropped: it is not for node 1.
    send(&mut t, Dest::Node(NodeId(2)), b"for two").unwrap();
    t.flush().unwrap();
    assert!(drain(&mut t).is_empty());
    assert_eq!(t.dpdk_stats().rx_not_for_us, 1);

    // Errors: too large, unknown node, and TxFull after `burst` sends without a flush.
    let mut called = false;
    assert!(matches!(
        t.send(Dest::Ring, 8973, |_| called = true),
        Err(SendError::TooLarge {
            len: 8973,
            mtu: 8972
        })
    ));
    assert!(matches!(
        t.send(Dest::Node(NodeId(9)), 10, |_| called = true),
        Err(SendError::Unknown(NodeId(9)))
    ));
    assert!(!called, "fill must not run on an error");
    for i in 0..8u8 {
        send(&mut t, Dest::Ring, &[i; 64]).unwrap();
    }
    assert!(matches!(
        send(&mut t, Dest::Ring, b"x"),
        Err(SendError::TxFull)
    ));
    t.flush().unwrap();
    let got = drain(&mut t);
    assert_eq!(got.len(), 8);
    for (i, (_, data)) in got.iter().enumerate() {
        assert_eq!(data, &vec![i as u8; 64]);
    }
    send(&mut t, Dest::Ring, b"after flush").unwrap();
    t.flush().unwrap();
    assert_eq!(drain(&mut t).len(), 1);

    // A sender outside the member list: delivered with node None and counted.
    t.set_members(&members(&[2, 3])).unwrap();
    send(&mut t, Dest::Ring, b"stranger").unwrap();
    t.flush().unwrap();
    let got = drain(&mut t);
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].0.node, None);
    assert_eq!(got[0].1, b"stranger");
    assert_eq!(t.stats().unknown_sources, 1);
    t.set_members(&members(&[1, 2])).unwrap();
    assert_eq!(
        t.set_members(&members(&[1, 1])).unwrap_err(),
        dataplane::MembersError::DuplicateNode(NodeId(1))
    );

    // A panicking callback does not leak the burst's mbufs.
    for _ in 0..3 {
        send(&mut t, Dest::Ring, b"boom").unwrap();
    }
    t.flush().unwrap();
    let r = catch_unwind(AssertUnwindSafe(|| {
        let _ = t.recv_burst(|_, _| panic!("callback panics"));
    }));
    assert!(r.is_err());
    assert!(drain(&mut t).is_empty(), "the whole burst was consumed");

    // Queued but never flushed frames are freed when the transport drops; here, check that
    // everything sent and received so far went back to the pool.
    assert_eq!(t.mbufs_available(), initial, "mbuf leak");

    // wait: nothing arrives, so it returns within its timeout (back-off mode).
    assert!(drain(&mut t).is_empty());
    for timeout in [
        Duration::ZERO,
        Duration::from_micros(50),
        Duration::from_millis(5),
    ] {
        let start = Instant::now();
        t.wait(Some(timeout)).unwrap();
        assert!(
            start.elapsed() < timeout + Duration::from_millis(50),
            "wait({timeout:?}) took {:?}",
            start.elapsed()
        );
    }
    let start = Instant::now();
    t.wait(None).unwrap();
    assert!(
        start.elapsed() < Duration::from_millis(50),
        "back-off is capped at 1 ms"
    );

    send(&mut t, Dest::Ring, b"queued at drop").unwrap();
    drop(t);

    // A second transport on the same (stopped) port, with the own-frame filter on.
    let mut cfg = DpdkConfig::new(eal_args(), port, NodeId(1));
    cfg.mbufs = 255;
    cfg.busy_poll = true;
    let mut t = DpdkTransport::new(cfg).expect("second transport on net_ring0");
    let initial = t.mbufs_available();
    t.set_members(&members(&[1, 2])).unwrap();
    send(&mut t, Dest::Ring, b"mine").unwrap();
    send(&mut t, Dest::Node(NodeId(2)), b"mine too").unwrap();
    t.flush().unwrap();
    assert!(drain(&mut t).is_empty());
    assert_eq!(t.dpdk_stats().rx_own, 2);
    assert_eq!(t.stats().frames_in, 0);
    let start = Instant::now();
    t.wait(Some(Duration::from_secs(1))).unwrap();
    assert!(
        start.elapsed() < Duration::from_millis(50),
        "busy_poll returns at once"
    );
    assert_eq!(t.mbufs_available(), initial, "mbuf leak");
    drop(t);

    // A third one with a long back-off: another thread's wake ends the idle sleep at once
    // (the Totem driver wakes the poller this way when a message is submitted).
    let mut cfg = DpdkConfig::new(eal_args(), port, NodeId(1));
    cfg.mbufs = 255;
    cfg.max_backoff = Duration::from_secs(5);
    let mut t = DpdkTransport::new(cfg).expect("third transport on net_ring0");
    assert!(drain(&mut t).is_empty());
    // Zero timeouts do not sleep but grow the back-off (10 µs doubling) to its 5 s cap.
    for _ in 0..24 {
        t.wait(Some(Duration::ZERO)).unwrap();
    }
    let waker = t.waker().expect("the DPDK transport has a waker");
    let wake = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(30));
        waker.wake();
    });
    let start = Instant::now();
    t.wait(None).unwrap();
    let slept = start.elapsed();
    wake.join().unwrap();
    assert!(
        slept >= Duration::from_millis(20) && slept < Duration::from_secs(4),
        "the wake should end a 5 s back-off after ~30 ms, took {slept:?}"
    );
}

/// Two processes (this test binary re-executed, role chosen by `OAIS_DPDK_ROLE`) exchange
/// ring and node frames both ways over `net_af_packet` on the two ends of a veth pair, inside a
/// network namespace this test creates and deletes. Needs root and `ip` (CI runs it as root);
/// without them it fails, naming what is missing.
#[test]
fn two_processes_over_af_packet() {
    if let Ok(role) = std::env::var("OAIS_DPDK_ROLE") {
        af_packet_peer(&role);
        return;
    }
    if std::env::var_os("OAIS_DPDK_IFACE").is_some() {
        return; // a child running the other test by accident
    }
    // One namespace per end: two af_packet sockets in one namespace collide on DPDK's
    // PACKET_FANOUT group id (EINVAL).
    let pid = std::process::id();
    let (ns_a, ns_b) = (format!("oais{pid}a"), format!("oais{pid}b"));
    let ip = |args: &[&str]| {
        std::process::Command::new("ip")
            .args(args)
            .status()
            .is_ok_and(|s| s.success())
    };
    struct Cleanup(Vec<String>);
    impl Drop for Cleanup {
        fn drop(&mut self) {
            for ns in &self.0 {
                let _ = std::process::Command::new("ip")
                    .args(["netns", "del", ns])
                    .status();
            }
        }
    }
    let mut cleanup = Cleanup(Vec::new());
    for ns in [&ns_a, &ns_b] {
        assert!(
            ip(&["netns", "add", ns]),
            "cannot create network namespace {ns}: this test needs root and iproute2 (CI runs it as root)"
        );
        cleanup.0.push(ns.clone());
    }
    assert!(ip(&[
        "-n", &ns_a, "link", "add", "oaisa", "type", "veth", "peer", "name", "oaisb", "netns",
        &ns_b
    ]));
    assert!(ip(&["-n", &ns_a, "link", "set", "oaisa", "up"]));
    assert!(ip(&["-n", &ns_b, "link", "set", "oaisb", "up"]));

    let exe = std::env::current_exe().unwrap();
    let spawn = |role: &str, ns: &str, iface: &str| {
        std::process::Command::new("ip")
            .args(["netns", "exec", ns])
            .arg(&exe)
            .args(["--exact", "two_processes_over_af_packet", "--nocapture"])
            .env("OAIS_DPDK_ROLE", role)
            .env("OAIS_DPDK_IFACE", iface)
            .spawn()
            .expect("spawn peer")
    };
    let mut a = spawn("1", &ns_a, "oaisa");
    let mut b = spawn("2", &ns_b, "oaisb");
    let (ra, rb) = (a.wait().unwrap(), b.wait().unwrap());
    assert!(ra.success() && rb.success(), "peer 1: {ra}, peer 2: {rb}");
}

/// One node of [`two_processes_over_af_packet`]: node `role` (1 or 2) sends a ring frame and a
/// node frame to the other every 5 ms until it has received both kinds from it, then keeps
/// sending for a while so the other can finish too.
fn af_packet_peer(role: &str) {
    let me: u32 = role.parse().unwrap();
    let other = 3 - me;
    let iface = std::env::var("OAIS_DPDK_IFACE").unwrap();
    let vdev = format!("--vdev=net_af_packet0,iface={iface},framesz=2048,blocksz=4096");
    let mut args = eal_args();
    args.retain(|a| !a.starts_with("--vdev"));
    args.push(vdev);
    args.push("--file-prefix".into());
    args.push(format!("oais{role}"));
    dpdk::init_eal(&args).expect("EAL init");
    let port = dpdk::port_by_name("net_af_packet0").expect("af_packet port");
    let mut cfg = DpdkConfig::new(args, port, NodeId(me));
    cfg.mbufs = 1023;
    cfg.rx_ring = 256;
    cfg.tx_ring = 256;
    cfg.min_data_room = 2048 + 128;
    let mut t = DpdkTransport::new(cfg).expect("transport on af_packet");
    let initial = t.mbufs_available();
    t.set_members(&members(&[1, 2])).unwrap();
    // Two members: once the other's MAC is learned, ring frames go to it (unicast), and the
    // ring frame says which way it went; each node must receive one that went unicast.
    assert_eq!(t.ring_destination(), None);
    let ring_msg = |unicast: bool| format!("ring from {me} unicast {unicast}").into_bytes();
    let node_msg = format!("node {me} to {other}").into_bytes();
    let want_ring = format!("ring from {other} unicast true").into_bytes();
    let want_node = format!("node {other} to {me}").into_bytes();
    let (mut got_ring, mut got_node) = (false, false);
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut done_at: Option<Instant> = None;
    while Instant::now() < deadline {
        if done_at.is_some_and(|d| d.elapsed() > Duration::from_millis(500)) {
            break;
        }
        let unicast = t.ring_destination() == Some(NodeId(other));
        send(&mut t, Dest::Ring, &ring_msg(unicast)).unwrap();
        send(&mut t, Dest::Node(NodeId(other)), &node_msg).unwrap();
        let _ = t.flush();
        let step = Instant::now();
        while step.elapsed() < Duration::from_millis(5) {
            t.recv_burst(|src, data| {
                assert_eq!(src.node, Some(NodeId(other)));
                got_ring |= data == want_ring.as_slice();
                got_node |= data == want_node.as_slice();
            })
            .unwrap();
            t.wait(Some(Duration::from_millis(1))).unwrap();
        }
        if got_ring && got_node && done_at.is_none() {
            done_at = Some(Instant::now());
        }
    }
    assert!(
        got_ring && got_node,
        "node {me}: ring {got_ring}, node {got_node}"
    );
    // The peer's MAC was learned, so node and ring frames went unicast after the first one.
    assert!(t.member_mac(NodeId(other)).is_some());
    assert_eq!(t.ring_destination(), Some(NodeId(other)));
    assert!(t.dpdk_stats().tx_ring_unicast > 0);
    // The backend's counters as `aisctl status` lists them, under names of their own.
    let mut c = dataplane::stats::Collect::default();
    t.visit_backend(&mut c);
    assert_eq!(
        c.get("dpdk_tx_ring_unicast"),
        Some(t.dpdk_stats().tx_ring_unicast)
    );
    assert_eq!(c.get("dpdk_rx_own"), Some(t.dpdk_stats().rx_own));
    assert_eq!(c.0.len(), 7, "{c:?}");
    // With a third member the ring frames go to the multicast MAC again: one frame must
    // reach them all.
    t.set_members(&members(&[1, 2, 3])).unwrap();
    assert_eq!(t.ring_destination(), None);
    assert_eq!(t.stats().tx_errors, 0);
    let _ = drain(&mut t);
    assert_eq!(t.mbufs_available(), initial, "mbuf leak");
    eprintln!("node {me}: {:?} {:?}", t.stats(), t.dpdk_stats());
}
