//! Three `aisexec` hosts in network namespaces on a bridge, over real kernel UDP, in both
//! modes: multicast (`transport = "udp"`, members discovered, 9000-byte jumbo frames) and
//! unicast (`transport = "udpu"`, member list, 1500-byte frames). CPG traffic in
//! one order everywhere; cutting host 3 off the bridge splits the cluster into two rings
//! ({1,2} and {3}), each of which keeps working; healing merges them into one ring; every
//! node's event log passes the checker.
//!
//! Assumes: root (namespaces, created and deleted by the test; CI runs as root), `ip` from
//! iproute2, a loaded 2-core machine (waits are generous). Both tests share nothing: each has
//! its own lab (names and subnets from the process id and a counter).

mod common;

use std::time::Duration;

use ais_client::cpg::{Cpg, CpgEvent};
use ais_proto::cpg::Reason;
use common::cluster::{Cluster, Mode, assert_one_order, cpg_traffic, wait_confchg};
use netlab::Lab;

const GROUP: &[u8] = b"netns";
const LONG: Duration = Duration::from_secs(20);

fn members(n: usize) -> impl Fn(&CpgEvent) -> bool {
    move |ev| matches!(ev, CpgEvent::ConfChg { members, .. } if members.len() == n)
}

fn partition_and_heal(mode: Mode, mtu: u32, name: &str) {
    let lab = Lab::new(3, mtu).expect("network-namespace lab");
    let mut c = Cluster::netns(name, &lab, mode, mtu);
    c.start_all();
    for i in 0..3 {
        c.wait_ring(i, &[1, 2, 3], LONG);
    }
    let mut cl: Vec<Cpg> = (0..3).map(|i| c.cpg(i)).collect();
    for x in &mut cl {
        x.join(GROUP).expect("join");
    }
    for x in &mut cl {
        wait_confchg(x, LONG, members(3));
    }
    let (a, rest) = cl.split_at_mut(1);
    let (b, d) = rest.split_at_mut(1);
    let orders = cpg_traffic(&mut [&mut a[0], &mut b[0], &mut d[0]], GROUP, 200, 1024);
    assert_one_order(&orders, 600);

    // Cut host 3: two rings, each told the other side is down.
    lab.cut(3).expect("cut");
    c.wait_ring(0, &[1, 2], LONG);
    c.wait_ring(1, &[1, 2], LONG);
    c.wait_ring(2, &[3], LONG);
    for (k, x) in cl.iter_mut().enumerate() {
        let gone: Vec<u32> = if k == 2 { vec![1, 2] } else { vec![3] };
        wait_confchg(x, LONG, |ev| {
            matches!(ev, CpgEvent::ConfChg { members, left, .. }
                if members.iter().all(|m| !gone.contains(&m.node))
                    && left.iter().all(|(m, r)| gone.contains(&m.node) && *r == Reason::NodeDown))
        });
    }
    // Both sides keep working on their own.
    let (a, rest) = cl.split_at_mut(1);
    let (b, d) = rest.split_at_mut(1);
    let orders = cpg_traffic(&mut [&mut a[0], &mut b[0]], GROUP, 50, 1024);
    assert_one_order(&orders, 100);
    let alone = cpg_traffic(&mut [&mut d[0]], GROUP, 50, 1024);
    assert_eq!(alone[0].len(), 50);

    // Heal: one ring again; the members learn each other back (nodeup).
    lab.heal(3).expect("heal");
    for i in 0..3 {
        c.wait_ring(i, &[1, 2, 3], LONG);
    }
    for x in &mut cl {
        wait_confchg(x, LONG, members(3));
    }
    let (a, rest) = cl.split_at_mut(1);
    let (b, d) = rest.split_at_mut(1);
    let orders = cpg_traffic(&mut [&mut a[0], &mut b[0], &mut d[0]], GROUP, 100, 1024);
    assert_one_order(&orders, 300);

    drop(cl);
    for i in 0..3 {
        c.terminate(i);
    }
    let report = c.check_logs();
    assert!(report.is_ok(), "{report}");
    assert!(report.rings >= 3, "{report}");
    drop(c);
    drop(lab);
}

#[test]
fn multicast_partition_and_heal() {
    partition_and_heal(Mode::Multicast, 9000, "netns-mcast");
}

#[test]
fn unicast_partition_and_heal() {
    partition_and_heal(Mode::Unicast, 1500, "netns-udpu");
}
