//! `aisexec` over the DPDK transport: two or three hosts in network namespaces on a bridge, each
//! executive driving its host's `eth0` through DPDK's `net_af_packet` poll-mode driver (raw
//! Ethernet frames, ethertype 0x88B5, secauth on). CPG traffic in one order everywhere, checked
//! by the checker on the event logs; `kill -9` of one node gives the others a new membership.
//!
//! Assumes: root (namespaces, created and deleted by the test), DPDK 22.11 with the
//! af_packet PMD (Debian `dpdk`), built with `--features ais/dpdk`; no hugepages (EAL runs with
//! `--no-huge --no-shconf`), each process its own EAL on lcore 0 with adaptive polling (three
//! busy pollers would starve a 2-core machine).

#![cfg(feature = "dpdk")]

mod common;

use std::time::Duration;

use ais_client::cpg::{Cpg, CpgEvent};
use ais_proto::cpg::Reason;
use common::cluster::{
    Cluster, Node, aisexec_section, assert_one_order, cpg_traffic, key_lines, lab_netns,
    wait_confchg,
};
use netlab::Lab;

const GROUP: &[u8] = b"dpdk";
const LONG: Duration = Duration::from_secs(20);

/// Node `id`'s configuration; `mtu` 1500 or 9000 (jumbo: af_packet frames of 10240 bytes in
/// blocks of 20480, as the research notes measured they must be, and mbufs to match).
fn config(node: &Node, hosts: usize, mtu: u32) -> String {
    let id = node.id;
    let (framesz, blocksz, room) = if mtu > 1500 {
        (10240, 20480, 10240 + 128)
    } else {
        (2048, 4096, 2048 + 128)
    };
    let mut t = format!(
        "[totem]\nnodeid = {id}\ntransport = \"dpdk\"\nnetmtu = {mtu}\n{}\n",
        key_lines(&node.dir)
    );
    // The nodelist names the members; DPDK learns their MAC addresses from their frames.
    for h in 1..=hosts {
        t += &format!("[[nodelist.node]]\nnodeid = {h}\nring0_addr = \"10.0.0.{h}\"\n\n");
    }
    t += &format!(
        "[dpdk]\nport = \"net_af_packet0\"\nmin_data_room = {room}\nmbufs = 4095\neal_args = [\"--no-huge\", \"-m\", \"256\", \"--no-pci\", \"--no-shconf\", \"--no-telemetry\", \"-l\", \"0\", \"--file-prefix\", \"oais{id}-{pid}\", \"--vdev=net_af_packet0,iface=eth0,framesz={framesz},blocksz={blocksz}\"]\n\n",
        pid = std::process::id()
    );
    t + &aisexec_section(node)
}

#[test]
fn three_executives_over_dpdk_af_packet() {
    over_af_packet(3, 1500, "dpdk-afp");
}

/// The same with 9000-byte links: many messages packed per Totem frame.
#[test]
fn three_executives_over_dpdk_af_packet_jumbo() {
    over_af_packet(3, 9000, "dpdk-afp-jumbo");
}

/// Two executives: the smallest ring, which the kill leaves as a ring of one.
#[test]
fn two_executives_over_dpdk_af_packet() {
    over_af_packet(2, 1500, "dpdk-afp-two");
}

fn over_af_packet(n: usize, mtu: u32, name: &str) {
    let lab = Lab::new(n, mtu).expect("network-namespace lab");
    let all: Vec<u32> = (1..=n as u32).collect();
    let mut c = Cluster::new(name, n, |node| config(node, n, mtu), lab_netns(&lab));
    c.start_all();
    for i in 0..n {
        c.wait_ring(i, &all, LONG);
    }
    assert!(
        std::fs::read_to_string(c.node(0).dir.join("aisexec.log"))
            .unwrap_or_default()
            .contains("Totem runs on DPDK port net_af_packet0"),
        "node 1 runs on DPDK"
    );
    let mut cl: Vec<Cpg> = (0..n).map(|i| c.cpg(i)).collect();
    for x in &mut cl {
        x.join(GROUP).expect("join");
    }
    for x in &mut cl {
        wait_confchg(
            x,
            LONG,
            |ev| matches!(ev, CpgEvent::ConfChg { members, .. } if members.len() == n),
        );
    }
    // With 9000-byte links a 6000-byte message travels in one frame: it only arrives if
    // af_packet carries jumbo frames whole (a 1500-byte link fragments it into five).
    let size = if mtu > 1500 { 6000 } else { 700 };
    let mut refs: Vec<&mut Cpg> = cl.iter_mut().collect();
    let orders = cpg_traffic(&mut refs, GROUP, 300, size);
    assert_one_order(&orders, 300 * n);
    // The DPDK backend's own counters reach `aisctl status`: with two nodes the ring frames
    // went to the other's MAC (with three they go to the ring's multicast MAC, though a ring
    // of two may have formed first).
    let status = cl[0].connection().status().expect("status");
    let unicast = status
        .counters
        .iter()
        .find(|c| &c.name[..] == b"dpdk_tx_ring_unicast")
        .map(|c| c.value)
        .expect("the DPDK backend's counters in the status");
    if n == 2 {
        assert!(unicast > 0, "two nodes: ring frames unicast, counted");
    }
    // kill -9 of the last node: the others form a new ring and CPG reports it down.
    let victim = n as u32;
    c.kill(n - 1);
    drop(cl.pop());
    for i in 0..n - 1 {
        c.wait_ring(i, &all[..n - 1], LONG);
    }
    for x in &mut cl {
        wait_confchg(
            x,
            LONG,
            |ev| matches!(ev, CpgEvent::ConfChg { left, .. } if left.iter().any(|(a, r)| a.node == victim && *r == Reason::NodeDown)),
        );
    }
    drop(cl);
    for i in 0..n - 1 {
        c.terminate(i);
    }
    let report = c.check_logs();
    // EAL's runtime directories of the processes (root: /var/run/dpdk).
    for id in 1..=n {
        let _ = std::fs::remove_dir_all(format!("/var/run/dpdk/oais{id}-{}", std::process::id()));
    }
    assert!(report.is_ok(), "{report}");
    assert!(report.delivered >= (300 * n * n) as u64, "{report}");
    drop(c);
    drop(lab);
}
