//! Redundant rings with real executives: three `aisexec` in network namespaces joined by two
//! bridges (two networks, `netlab::Lab::with_networks`), in active and in passive mode. Under
//! CPG traffic from every node, network 0 is cut (every host's port on its bridge down) and
//! later restored. Checked: no Totem configuration change at any node (`rings_installed`
//! unchanged, so no CPG membership change either), every message delivered once and in one order everywhere (and the checker on the
//! event logs), every node marks network 0 faulty and, once it works again, re-enables it by
//! itself within [`REENABLE_BOUND`]; `aisctl ring status` exits 2 while it is faulty and 0
//! after; the event logs have the `rrp` lines.
//!
//! Needs root (namespaces); the lab's namespaces are deleted when the test ends, also on a
//! failure (the lab is dropped after the cluster, whose drop kills the executives).

mod common;

use std::process::Command;
use std::time::{Duration, Instant};

use common::cluster::{Cluster, aisexec_section, assert_one_order, key_lines, lab_netns};

/// A generous bound on the time from a restored network to its re-enabling at every node
/// (the layer needs four clean 50 ms windows with traffic, 200 ms; the rest is slack for a
/// loaded 2-core machine and the 100 ms status refresh).
const REENABLE_BOUND: Duration = Duration::from_secs(5);
const LONG: Duration = Duration::from_secs(20);

/// Node `node.id`'s configuration: two networks, `mode`.
fn config(lab: &netlab::Lab, mode: &str, node: &common::cluster::Node) -> String {
    let mut t = format!(
        "[totem]\nnodeid = {}\ntransport = \"udpu\"\n{}rrp_mode = \"{mode}\"\n\n\
         [totem.interface]\nmcastport = 5405\n\n",
        node.id,
        key_lines(&node.dir)
    );
    for h in 1..=lab.hosts() {
        t += &format!(
            "[[nodelist.node]]\nnodeid = {h}\nring0_addr = \"{}\"\nring1_addr = \"{}\"\n\n",
            lab.addr_on(0, h),
            lab.addr_on(1, h)
        );
    }
    t + &aisexec_section(node)
}

/// `aisctl ring status` at node `i`: its exit code and output.
fn ring_status(c: &Cluster, i: usize) -> (i32, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_aisctl"))
        .arg("--socket")
        .arg(&c.node(i).socket)
        .args(["ring", "status"])
        .output()
        .expect("run aisctl");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr),
    )
}

/// Waits until `pred` holds for network 0's state gauge at every node; returns the time.
fn wait_net0(c: &Cluster, what: &str, pred: impl Fn(u64) -> bool) -> Duration {
    let t0 = Instant::now();
    loop {
        let states: Vec<u64> = (0..3).map(|i| c.counter(i, "rrp_net0_state")).collect();
        if states.iter().all(|&s| pred(s)) {
            return t0.elapsed();
        }
        assert!(
            t0.elapsed() < LONG,
            "{what}: network 0 states {states:?} after {LONG:?}"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
}

fn cut_network_under_cpg_load(name: &str, mode: &str) {
    let lab =
        netlab::Lab::with_networks(3, 2, 1500).expect("network-namespace lab (needs root and ip)");
    let mut c = Cluster::new(name, 3, |node| config(&lab, mode, node), lab_netns(&lab));
    c.start_all();
    for i in 0..3 {
        c.wait_ring(i, &[1, 2, 3], LONG);
    }
    for i in 0..3 {
        assert_eq!(c.counter(i, "rrp_networks"), 2, "node {}", i + 1);
        let (code, text) = ring_status(&c, i);
        assert_eq!(code, 0, "{text}");
        assert!(text.contains("working"), "{text}");
    }
    let rings_before: Vec<u64> = (0..3).map(|i| c.counter(i, "rings_installed")).collect();

    let mut clients: Vec<_> = (0..3).map(|i| c.cpg(i)).collect();
    for cpg in &mut clients {
        cpg.join(b"rings").expect("join");
    }
    // Every client sees the group of three before the traffic starts.
    for cpg in &mut clients {
        common::cluster::wait_confchg(
            cpg,
            LONG,
            |ev| matches!(ev, ais_client::cpg::CpgEvent::ConfChg { members, .. } if members.len() == 3),
        );
    }

    const COUNT: u32 = 3000;
    let (orders, faulty_after, restored_after, codes) = std::thread::scope(|s| {
        let mut refs: Vec<&mut ais_client::cpg::Cpg> = clients.iter_mut().collect();
        let traffic =
            s.spawn(move || common::cluster::cpg_traffic(&mut refs, b"rings", COUNT, 200));
        std::thread::sleep(Duration::from_millis(300));
        lab.cut_network(0).expect("cut network 0");
        let faulty_after = wait_net0(&c, "marked faulty", |s| s != 0);
        let during: Vec<(i32, String)> = (0..3).map(|i| ring_status(&c, i)).collect();
        std::thread::sleep(Duration::from_millis(500));
        lab.heal_network(0).expect("heal network 0");
        let restored_after = wait_net0(&c, "re-enabled", |s| s == 0);
        let orders = traffic.join().expect("traffic");
        (orders, faulty_after, restored_after, during)
    });
    eprintln!(
        "{mode}: network 0 cut: faulty at every node after {faulty_after:?}; healed: \
         re-enabled at every node after {restored_after:?}"
    );
    for (code, text) in &codes {
        assert_eq!(
            *code, 2,
            "aisctl ring status while network 0 is faulty: {text}"
        );
        assert!(text.contains("faulty"), "{text}");
    }
    assert!(
        restored_after < REENABLE_BOUND,
        "network 0 re-enabled after {restored_after:?}"
    );
    assert_one_order(&orders, COUNT as usize * 3);
    for (i, before) in rings_before.iter().enumerate() {
        assert_eq!(
            c.counter(i, "rings_installed"),
            *before,
            "node {}: a configuration change during the cut",
            i + 1
        );
        assert!(c.counter(i, "rrp_net0_marked_faulty") >= 1);
        assert!(c.counter(i, "rrp_net0_restored") >= 1);
        assert_eq!(c.counter(i, "rrp_net1_marked_faulty"), 0, "node {}", i + 1);
        let (code, text) = ring_status(&c, i);
        assert_eq!(code, 0, "{text}");
    }
    // No CPG membership change was queued at any client during the traffic.
    for cpg in &mut clients {
        while let Some(ev) = cpg.dispatch(Some(Duration::ZERO)).expect("dispatch") {
            assert!(
                !matches!(ev, ais_client::cpg::CpgEvent::ConfChg { .. }),
                "a CPG membership change: {ev:?}"
            );
        }
    }
    drop(clients);
    for i in 0..3 {
        c.terminate(i);
    }
    let report = c.check_logs();
    assert!(report.is_ok(), "{report}");
    for i in 0..3 {
        let log = std::fs::read_to_string(&c.node(i).events).expect("event log");
        assert!(
            log.contains("\"service\":\"rrp\"") && log.contains("\"what\":\"faulty\""),
            "node {}: no rrp faulty line in the event log",
            i + 1
        );
        assert!(log.contains("\"what\":\"restored\""), "node {}", i + 1);
    }
}

#[test]
fn active_mode_rides_out_a_cut_network_and_takes_it_back() {
    cut_network_under_cpg_load("rings-active", "active");
}

#[test]
fn passive_mode_rides_out_a_cut_network_and_takes_it_back() {
    cut_network_under_cpg_load("rings-passive", "passive");
}
