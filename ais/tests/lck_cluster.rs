//! LCK with three real executives and quorum under a partition (network namespaces): node 3
//! holds an EX lock and node 1 waits for it; {1,2} | {3}: the quorate side releases node 3's
//! lock and grants node 1's request, while node 3's partition (not quorate) refuses new
//! requests with TRY_AGAIN; after the heal the quorate side's table wins at every node: node
//! 3's lost lock answers NOT_EXIST to its unlock, and `aisctl lck ls` is identical at the
//! three.
//!
//! Assumes: root with `ip` from iproute2 (it creates and deletes its own namespaces; it fails,
//! never skips, without them); a loaded 2-core machine (every wait is generous).

mod common;

use std::time::{Duration, Instant};

use ais_client::lck::{Lck, LckEvent, LockStatus, Mode, RESOURCE_CREATE, TIME_END};
use ais_client::{AisError, Error};
use common::cluster::{Cluster, Mode as NetMode, lab_netns, netns_config};

const LONG: Duration = Duration::from_secs(30);

fn lck(c: &Cluster, i: usize) -> Lck {
    let deadline = Instant::now() + LONG;
    loop {
        match Lck::connect(&c.node(i).socket) {
            Ok(k) => return k,
            Err(e) if Instant::now() > deadline => panic!("connect to node {}: {e}", i + 1),
            Err(_) => std::thread::sleep(Duration::from_millis(20)),
        }
    }
}

fn again<T>(op: impl FnMut() -> Result<T, Error>) -> Result<T, Error> {
    common::ckpt::again(LONG, op)
}

fn ls(c: &Cluster, i: usize) -> String {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_aisctl"))
        .arg("--socket")
        .arg(&c.node(i).socket)
        .args(["lck", "ls"])
        .output()
        .expect("aisctl runs");
    assert!(out.status.success(), "aisctl lck ls at node {}", i + 1);
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn the_quorate_side_takes_over_a_partitioned_holders_lock() {
    let lab = netlab::Lab::new(3, 1500).expect("network-namespace lab (needs root and ip)");
    let mut c = Cluster::new(
        "lck-partition",
        3,
        |node| netns_config(NetMode::Unicast, 1500, node, &lab) + "\n[quorum]\n",
        lab_netns(&lab),
    );
    c.start_all();
    for i in 0..3 {
        c.wait_ring(i, &[1, 2, 3], LONG);
    }
    let mut l: Vec<Lck> = (0..3).map(|i| lck(&c, i)).collect();
    let h3 = again(|| l[2].resource_open(b"r", RESOURCE_CREATE)).expect("open at 3");
    let (lost, s) = again(|| l[2].lock(h3, Mode::Ex, 0, 3, TIME_END)).expect("lock at 3");
    assert_eq!(s, LockStatus::Granted);
    let h1 = again(|| l[0].resource_open(b"r", 0)).expect("open at 1");
    let waiting = again(|| l[0].lock_async(h1, Mode::Ex, 0, 1, 7)).expect("lock at 1");

    lab.cut(3).expect("cut host 3");
    c.wait_ring(0, &[1, 2], LONG);
    c.wait_ring(1, &[1, 2], LONG);
    c.wait_ring(2, &[3], LONG);
    // The quorate side granted node 1's request.
    let deadline = Instant::now() + LONG;
    loop {
        match l[0].dispatch(Some(Duration::from_millis(200))).unwrap() {
            Some(LckEvent::Grant { lock, result, .. }) => {
                assert_eq!((lock, result), (waiting, Ok(LockStatus::Granted)));
                break;
            }
            _ if Instant::now() > deadline => panic!("node 1 was not granted the lock"),
            _ => {}
        }
    }
    // Node 3's side is not quorate: a new request is refused (and stays so).
    let h3s = again(|| l[2].resource_open(b"s", RESOURCE_CREATE)).expect("open s at 3");
    let refused = l[2].lock(h3s, Mode::Pr, 0, 3, TIME_END);
    assert_eq!(
        refused.unwrap_err().ais_error(),
        Some(AisError::TryAgain),
        "a minority grants nothing"
    );

    lab.heal(3).expect("heal host 3");
    for i in 0..3 {
        c.wait_ring(i, &[1, 2, 3], LONG);
    }
    // Node 3's lock went with its side: its unlock finds nothing.
    let e = again(|| l[2].unlock(lost)).unwrap_err().ais_error();
    assert_eq!(e, Some(AisError::NotExist));
    // The three nodes show the same table, node 1's lock granted.
    let deadline = Instant::now() + LONG;
    loop {
        let tables: Vec<String> = (0..3).map(|i| ls(&c, i)).collect();
        if tables.iter().all(|t| *t == tables[0])
            && tables[0].contains("r: 2 open, 1 granted, 0 queued")
        {
            assert!(
                tables[0].contains(" EX  granted holder 1."),
                "{}",
                tables[0]
            );
            break;
        }
        assert!(Instant::now() < deadline, "tables differ: {tables:#?}");
        std::thread::sleep(Duration::from_millis(100));
    }
    again(|| l[0].unlock(waiting)).expect("unlock at 1");
}
