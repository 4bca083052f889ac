//! Frame security with real `aisexec` processes on loopback (secauth on, AES-256-GCM):
//! a node with another key never joins and is reported as "invalid digest from ADDR"; an
//! online rekey during steady CPG traffic changes no membership and loses nothing (checker
//! clean); a node that was down during a rekey is told to copy the current key file, and
//! joins once it has.
//!
//! Assumes: loopback only, no root, free UDP ports from the kernel, a loaded 2-core machine
//! (generous waits; the only timing asserted is "within seconds").

mod common;

use std::collections::HashSet;
use std::fs;
use std::path::Path;
use std::time::{Duration, Instant};

use ais::keyfile::{self, KeyMaterial};
use ais_client::Admin;
use ais_client::cpg::{Cpg, CpgEvent};
use ais_proto::ipc::Guarantee;
use common::cluster::{Cluster, wait_confchg};

const GROUP: &[u8] = b"keys";
const LONG: Duration = Duration::from_secs(15);

fn new_key(path: &Path) {
    let key = KeyMaterial {
        epoch: 0,
        secret: keyfile::generate().expect("random"),
    };
    keyfile::write(path, &key, true).expect("write key");
}

/// Points node `i`'s configuration at another key file.
fn set_keyfile(c: &Cluster, i: usize, key: &Path) {
    let cfg = &c.node(i).config;
    let text = fs::read_to_string(cfg).expect("config");
    let text: String = text
        .lines()
        .map(|l| {
            if l.starts_with("keyfile") {
                format!("keyfile = \"{}\"", key.display())
            } else {
                l.to_owned()
            }
        })
        .collect::<Vec<_>>()
        .join("\n");
    fs::write(cfg, text).expect("config");
}

fn log_of(c: &Cluster, i: usize) -> String {
    fs::read_to_string(c.node(i).dir.join("aisexec.log")).unwrap_or_default()
}

/// Waits until node `i`'s log contains `needle`.
fn wait_log(c: &Cluster, i: usize, needle: &str) {
    let deadline = Instant::now() + LONG;
    while !log_of(c, i).contains(needle) {
        assert!(
            Instant::now() < deadline,
            "node {} never logged {needle:?}; log:\n{}",
            i + 1,
            log_of(c, i)
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn counter(c: &Cluster, i: usize, name: &str) -> u64 {
    c.counter(i, name)
}

#[test]
fn a_node_with_another_key_never_joins() {
    let mut c = Cluster::loopback("wrong-key", 3, "");
    let other = c.node(2).dir.join("other-authkey");
    new_key(&other);
    set_keyfile(&c, 2, &other);
    c.start_all();
    c.wait_ring(0, &[1, 2], LONG);
    c.wait_ring(1, &[1, 2], LONG);
    c.wait_ring(2, &[3], LONG);
    wait_log(&c, 0, "invalid digest from 127.0.0.1:");
    wait_log(&c, 2, "invalid digest from 127.0.0.1:");
    // Many merge-detect and join rounds later, still two rings.
    std::thread::sleep(Duration::from_secs(2));
    c.wait_ring(0, &[1, 2], LONG);
    c.wait_ring(2, &[3], LONG);
    assert!(counter(&c, 0, "invalid_digest") > 0);
    assert!(counter(&c, 2, "invalid_digest") > 0);
    assert!(counter(&c, 0, "frames_sealed") > 0, "frames are sealed");
    // The diagnostic is rate-limited: one line per 10 s, not one per frame.
    let lines = log_of(&c, 0).matches("invalid digest from").count();
    assert!(lines <= 2, "{lines} lines");
}

/// Every client sends `count` messages; all collect until they have everyone's; the orders
/// are compared. Node `rekey_from`'s admin connection rekeys once every client has sent
/// `count / 3` messages.
fn traffic_with_rekey(c: &Cluster, clients: &mut [Cpg], count: u32, rekey_from: usize) {
    let expect = count as usize * clients.len();
    let sent = std::sync::atomic::AtomicU32::new(0);
    let orders: Vec<Vec<(u32, u32)>> = std::thread::scope(|s| {
        let socket = c.node(rekey_from).socket.clone();
        let sent = &sent;
        let total = clients.len() as u32;
        let rekeyer = s.spawn(move || {
            while sent.load(std::sync::atomic::Ordering::Relaxed) < total * count / 3 {
                std::thread::sleep(Duration::from_millis(1));
            }
            let mut admin = Admin::connect(&socket).expect("admin");
            let deadline = Instant::now() + LONG;
            loop {
                match admin.rekey() {
                    Ok(()) => break,
                    Err(e) if e.is_try_again() && Instant::now() < deadline => {
                        std::thread::sleep(Duration::from_millis(5));
                    }
                    Err(e) => panic!("rekey: {e}"),
                }
            }
        });
        let hs: Vec<_> = clients
            .iter_mut()
            .map(|cpg| {
                s.spawn(move || {
                    let node = cpg.local_get().expect("local_get");
                    let mut order = Vec::new();
                    let note = |ev: Option<CpgEvent>, order: &mut Vec<(u32, u32)>| match ev {
                        Some(CpgEvent::Deliver { sender, data, .. }) => {
                            order.push((
                                sender.node,
                                u32::from_le_bytes(data[..4].try_into().unwrap()),
                            ));
                        }
                        Some(CpgEvent::ConfChg { .. }) => {
                            panic!("membership changed during the rekey")
                        }
                        None => {}
                    };
                    for i in 0..count {
                        let mut m = i.to_le_bytes().to_vec();
                        m.resize(512, node as u8);
                        let g = if i % 4 == 0 {
                            Guarantee::Safe
                        } else {
                            Guarantee::Agreed
                        };
                        cpg.mcast_retry(GROUP, g, &m, LONG).expect("mcast");
                        sent.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                        while let Some(ev) = cpg.dispatch(Some(Duration::ZERO)).expect("dispatch") {
                            note(Some(ev), &mut order);
                        }
                    }
                    let deadline = Instant::now() + Duration::from_secs(60);
                    while order.len() < expect {
                        assert!(Instant::now() < deadline, "{} of {expect}", order.len());
                        note(
                            cpg.dispatch(Some(Duration::from_secs(1)))
                                .expect("dispatch"),
                            &mut order,
                        );
                    }
                    order
                })
            })
            .collect();
        let orders = hs.into_iter().map(|h| h.join().expect("client")).collect();
        rekeyer.join().expect("rekeyer");
        orders
    });
    for o in &orders {
        assert_eq!(o.len(), expect);
        assert_eq!(
            o.iter().collect::<HashSet<_>>().len(),
            expect,
            "no duplicates"
        );
        assert_eq!(o, &orders[0], "one order everywhere");
    }
}

#[test]
fn rekey_during_traffic_changes_no_membership_and_loses_nothing() {
    let mut c = Cluster::loopback("rekey", 3, "");
    c.start_all();
    for i in 0..3 {
        c.wait_ring(i, &[1, 2, 3], LONG);
    }
    let rings_before: Vec<u64> = (0..3).map(|i| counter(&c, i, "rings_installed")).collect();
    let mut clients: Vec<Cpg> = (0..3).map(|i| c.cpg(i)).collect();
    for cl in &mut clients {
        cl.join(GROUP).expect("join");
    }
    for cl in &mut clients {
        wait_confchg(
            cl,
            LONG,
            |ev| matches!(ev, CpgEvent::ConfChg { members, .. } if members.len() == 3),
        );
    }
    traffic_with_rekey(&c, &mut clients, 1500, 1);
    // A second rekey, from another node, once the first is complete everywhere.
    traffic_with_rekey(&c, &mut clients, 500, 2);
    for (i, &before) in rings_before.iter().enumerate() {
        assert_eq!(counter(&c, i, "key_epoch"), 2, "node {}", i + 1);
        assert_eq!(counter(&c, i, "rekeys"), 2, "node {}", i + 1);
        assert_eq!(
            counter(&c, i, "rings_installed"),
            before,
            "no membership change"
        );
        assert_eq!(counter(&c, i, "invalid_digest"), 0);
    }
    let key = keyfile::read(&c.node(0).dir.parent().unwrap().join("authkey")).expect("key");
    assert_eq!(key.epoch, 2, "the key file holds the new epoch");
    wait_log(&c, 0, "switched to key epoch 2");
    drop(clients);
    for i in 0..3 {
        c.terminate(i);
    }
    let report = c.check_logs();
    assert!(report.is_ok(), "{report}");
}

#[test]
fn a_node_down_during_a_rekey_is_told_what_to_do() {
    let mut c = Cluster::loopback("rekey-down", 3, "");
    // Each node has its own copy of the key file, as on real blades.
    let keys: Vec<_> = (0..3).map(|i| c.node(i).dir.join("authkey")).collect();
    let shared = c.node(0).dir.parent().unwrap().join("authkey");
    for (i, k) in keys.iter().enumerate() {
        fs::copy(&shared, k).expect("copy key");
        set_keyfile(&c, i, k);
    }
    c.start_all();
    for i in 0..3 {
        c.wait_ring(i, &[1, 2, 3], LONG);
    }
    c.kill(2);
    c.wait_ring(0, &[1, 2], LONG);
    let mut admin = Admin::connect(&c.node(0).socket).expect("admin");
    admin.rekey().expect("rekey");
    wait_log(&c, 0, "epoch 0 is retired");
    wait_log(&c, 1, "epoch 0 is retired");
    assert_eq!(keyfile::read(&keys[0]).expect("key").epoch, 1);
    assert_eq!(keyfile::read(&keys[2]).expect("key").epoch, 0);
    // Node 3 comes back with the old key: it cannot join, and both sides say why.
    c.start(2);
    wait_log(
        &c,
        2,
        "the cluster was rekeyed while this node was away; copy the current key file",
    );
    wait_log(&c, 0, "missed a rekey and needs the current key file");
    c.wait_ring(0, &[1, 2], LONG);
    // The operator copies the key file; node 3 restarts and joins.
    c.kill(2);
    fs::copy(&keys[0], &keys[2]).expect("copy key");
    c.start(2);
    for i in 0..3 {
        c.wait_ring(i, &[1, 2, 3], LONG);
    }
}
