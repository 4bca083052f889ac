//! Redundant rings with real executives: three `aisexec` in network namespaces joined by two
//! bridges (two networks, `netlab::Lab::with_networks`), in active and in passive mode. Under
//! CPG traffic from every node and CKPT writes at node 2, network 0 gets three faults in turn,
//! each removed before the next:
//! 1. **cut**: every host's port on its bridge down (as an operator sees a dead hub);
//! 2. **lossy**: every link of network 0 loses 50% of its frames;
//! 3. **one-way**: node 1's sends on network 0 are lost, its receives intact.
//!
//! The kernel here has no `netem` and no tc actions, so faults 2 and 3 come from the
//! fault-injecting transport wrapper (`dataplane::fault::FaultInjector`), which every executive
//! is told to use with the hidden, test-only `--test-fault-file` (`ais::faultfile`): the test
//! writes the faults into one file that all three read.
//!
//! Checked: no Totem configuration change at any node (`rings_installed` unchanged, so no CPG
//! membership change either), every message delivered once and in one order everywhere (and
//! the checker on the event logs), every CKPT write acknowledged and read back whole at every
//! node; each fault is marked by the nodes that can see it (the cut and the loss by every node,
//! the one-way cut by node 1's successor, node 2) and, once removed, the network is re-enabled by itself at
//! every node within [`REENABLE_BOUND`]; network 1 is never marked; `aisctl ring status` exits
//! 2 while network 0 is faulty and 0 after; the event logs have the `rrp` lines.
//!
//! Needs root (namespaces); the lab's namespaces are deleted when the test ends, also on a
//! failure (the lab is dropped after the cluster, whose drop kills the executives). Assumes no
//! executive is descheduled for longer than the token timeout, set to [`TOKEN_MS`] (1 s) for
//! that reason; each fault is held longer than that, so a fault the layer failed to mask
//! would still lose the token.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::time::{Duration, Instant};

use ais_client::Error;
use ais_client::ckpt::{
    Attributes, Ckpt, OPEN_CREATE, OPEN_READ, OPEN_WRITE, ReadElement, TIME_END, WR_ALL_REPLICAS,
    WriteElement,
};
use ais_client::cpg::{Cpg, CpgEvent};
use ais_proto::ipc::Guarantee;
use bytes::Bytes;
use common::cluster::{Cluster, aisexec_section, assert_one_order, key_lines, lab_netns};

/// A generous bound on the time from a removed fault to the network's re-enabling at every
/// node (the layer needs four clean 50 ms windows with traffic, 200 ms; after a cut of a kernel
/// UDP network the kernel must also resolve the peers' addresses again (ARP: the entries went
/// INCOMPLETE during the cut, probed once a second), about 0.5 s more, once 6.6 s on this
/// machine under load; the rest is slack for a loaded 2-core machine and the 100 ms status
/// refresh).
const REENABLE_BOUND: Duration = Duration::from_secs(10);
const LONG: Duration = Duration::from_secs(20);
/// How long a fault stays after the nodes that see it marked the network: longer than the
/// token timeout ([`TOKEN_MS`]), so that a network fault the layer failed to mask would lose
/// the token and change the configuration while the fault lasts.
const HOLD: Duration = Duration::from_millis(1500);
/// The executives' token timeout (`totem.token`), ms. What these tests assume of the machine:
/// no executive is descheduled for this long (a stall past the token timeout is a token loss
/// whatever the networks do). With the default 100 ms they failed on this 2-core machine
/// under other builds (load average 15 to 26) after all three executives stalled 343 and 413
/// ms at the same instant (`process paused` in their logs): the machine, not a network.
const TOKEN_MS: u32 = 1000;
/// CKPT sections written in turn.
const SECTIONS: u32 = 4;

/// Node `node.id`'s configuration: two networks, `mode`.
fn config(lab: &netlab::Lab, mode: &str, node: &common::cluster::Node) -> String {
    let mut t = format!(
        "[totem]\nnodeid = {}\ntransport = \"udpu\"\ntoken = {TOKEN_MS}\n{}rrp_mode = \"{mode}\"\n\n\
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

/// Network 0's state gauge at every node (0 working, 1 lost, 2 one-way, 3 lossy).
fn net0_states(c: &Cluster) -> Vec<u64> {
    net_states(c, 0)
}

/// Network `net`'s state gauge at every node.
fn net_states(c: &Cluster, net: usize) -> Vec<u64> {
    (0..3)
        .map(|i| c.counter(i, &format!("rrp_net{net}_state")))
        .collect()
}

/// Waits until `pred` has held for network 0's state gauge at each of the nodes `at`
/// (0-based); returns when it first held at each (`None` for the others) and the states at
/// the end.
fn wait_net0(
    c: &Cluster,
    what: &str,
    at: &[usize],
    pred: impl Fn(u64) -> bool,
) -> (Vec<Option<Duration>>, Vec<u64>) {
    wait_net(c, 0, what, at, pred)
}

/// [`wait_net0`] for network `net`.
fn wait_net(
    c: &Cluster,
    net: usize,
    what: &str,
    at: &[usize],
    pred: impl Fn(u64) -> bool,
) -> (Vec<Option<Duration>>, Vec<u64>) {
    let t0 = Instant::now();
    let mut first = vec![None; 3];
    loop {
        let states = net_states(c, net);
        for &i in at {
            if first[i].is_none() && pred(states[i]) {
                first[i] = Some(t0.elapsed());
            }
        }
        if at.iter().all(|&i| first[i].is_some()) {
            return (first, states);
        }
        assert!(
            t0.elapsed() < LONG,
            "{what}: network {net} states {states:?} after {LONG:?}"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// Waits (at most [`REENABLE_BOUND`]) until every node has undone each marking of network
/// `net` (`rrp_net<net>_restored` equals `rrp_net<net>_marked_faulty`). A node may mark a
/// network just before its fault is removed (node 3 marks the one-way cut late, if at all) and
/// re-enable it four windows after; the counters are a snapshot refreshed every 100 ms, so a
/// wait on the state gauge alone can return before such a marking shows.
fn wait_markings_undone(c: &Cluster, net: usize) {
    let t0 = Instant::now();
    loop {
        let pairs: Vec<(u64, u64)> = (0..3)
            .map(|i| {
                (
                    c.counter(i, &format!("rrp_net{net}_marked_faulty")),
                    c.counter(i, &format!("rrp_net{net}_restored")),
                )
            })
            .collect();
        if pairs.iter().all(|(m, r)| m == r) {
            return;
        }
        assert!(
            t0.elapsed() < REENABLE_BOUND,
            "network {net}: (marked, restored) per node {pairs:?} after {REENABLE_BOUND:?}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// The latest of the times [`wait_net0`] returned.
fn last(times: &[Option<Duration>]) -> Duration {
    times.iter().flatten().max().copied().unwrap_or_default()
}

/// Replaces the faults every executive applies (`ais::faultfile`'s format); written to a
/// temporary file and renamed, so a reader never sees half of it.
fn set_faults(file: &Path, text: &str) {
    let tmp = file.with_extension("tmp");
    std::fs::write(&tmp, text).expect("write fault file");
    std::fs::rename(&tmp, file).expect("rename fault file");
}

/// Every client sends messages of `size` bytes to `group` (the first 4 bytes are its index;
/// every third message safe, the others agreed) until `stop`, dispatching as it goes, then
/// collects until it has every client's messages. Returns each client's delivery order as
/// (sender node, index) and the number of messages each sent.
fn traffic_until(
    clients: &mut [Cpg],
    group: &[u8],
    size: usize,
    stop: &AtomicBool,
) -> (Vec<Vec<(u32, u32)>>, u32) {
    let n = clients.len();
    let sent: Vec<AtomicU32> = (0..n).map(|_| AtomicU32::new(u32::MAX)).collect();
    let orders = std::thread::scope(|s| {
        let hs: Vec<_> = clients
            .iter_mut()
            .enumerate()
            .map(|(k, cpg)| {
                let sent = &sent;
                s.spawn(move || {
                    let mut order = Vec::new();
                    let note = |ev: Option<CpgEvent>, order: &mut Vec<(u32, u32)>| {
                        if let Some(CpgEvent::Deliver { sender, data, .. }) = ev {
                            let i = u32::from_le_bytes(data[..4].try_into().expect("index"));
                            order.push((sender.node, i));
                        }
                    };
                    let mut i = 0u32;
                    while !stop.load(Ordering::Acquire) {
                        let mut m = i.to_le_bytes().to_vec();
                        m.resize(size.max(4), 0x5a);
                        let g = if i.is_multiple_of(3) {
                            Guarantee::Safe
                        } else {
                            Guarantee::Agreed
                        };
                        cpg.mcast_retry(group, g, &m, LONG).expect("mcast");
                        i += 1;
                        while let Some(ev) = cpg.dispatch(Some(Duration::ZERO)).expect("dispatch") {
                            note(Some(ev), &mut order);
                        }
                    }
                    sent[k].store(i, Ordering::Release);
                    let deadline = Instant::now() + LONG;
                    loop {
                        let counts: Vec<u32> =
                            sent.iter().map(|c| c.load(Ordering::Acquire)).collect();
                        if !counts.contains(&u32::MAX)
                            && order.len() == counts.iter().map(|&c| c as usize).sum::<usize>()
                        {
                            return order;
                        }
                        // Missing deliveries are reported by the caller's checks, after
                        // the configuration check that says what ended a ring.
                        if Instant::now() >= deadline {
                            eprintln!(
                                "client {}: {} delivered; sent {counts:?}",
                                k + 1,
                                order.len()
                            );
                            return order;
                        }
                        note(
                            cpg.dispatch(Some(Duration::from_millis(50)))
                                .expect("dispatch"),
                            &mut order,
                        );
                    }
                })
            })
            .collect();
        hs.into_iter()
            .map(|h| h.join().expect("client"))
            .collect::<Vec<_>>()
    });
    let total = sent.iter().map(|c| c.load(Ordering::Acquire)).sum();
    (orders, total)
}

/// 1 KiB of data saying which write it was.
fn ckpt_data(write: u32) -> Vec<u8> {
    let mut d = format!("write {write}").into_bytes();
    d.resize(1024, b'.');
    d
}

fn again<T>(op: impl FnMut() -> Result<T, Error>) -> Result<T, Error> {
    common::ckpt::again(LONG, op)
}

/// Writes section `s{i % SECTIONS}` with write `i`'s data, one write after the other (each
/// acknowledged) until `stop`; returns the number of writes.
fn ckpt_writes_until(k: &mut Ckpt, stop: &AtomicBool) -> u32 {
    let h = again(|| k.open(b"rings", OPEN_READ | OPEN_WRITE, None)).expect("open at node 2");
    let mut i = 0;
    while !stop.load(Ordering::Acquire) {
        let section = format!("s{}", i % SECTIONS);
        again(|| {
            k.write(
                h,
                &[WriteElement {
                    section: Bytes::copy_from_slice(section.as_bytes()),
                    offset: 0,
                    data: Bytes::from(ckpt_data(i)),
                }],
            )
            .map_err(Error::from)
        })
        .unwrap_or_else(|e| panic!("CKPT write {i}: {e}"));
        i += 1;
    }
    i
}

/// One fault's outcome, for the messages and docs.
struct Phase {
    name: &'static str,
    marked_after: Vec<Option<Duration>>,
    states: Vec<u64>,
    reenabled_after: Vec<Option<Duration>>,
}

fn faults_under_cpg_load(name: &str, mode: &str) {
    let lab =
        netlab::Lab::with_networks(3, 2, 1500).expect("network-namespace lab (needs root and ip)");
    let mut fault_file = PathBuf::new();
    let mut c = Cluster::new_with_args(
        name,
        3,
        |node| config(&lab, mode, node),
        lab_netns(&lab),
        |dir| {
            fault_file = dir.join("faults");
            vec!["--test-fault-file".into(), fault_file.clone().into()]
        },
    );
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

    let mut clients: Vec<Cpg> = (0..3).map(|i| c.cpg(i)).collect();
    for cpg in &mut clients {
        cpg.join(b"rings").expect("join");
    }
    // Every client sees the group of three before the traffic starts.
    for cpg in &mut clients {
        common::cluster::wait_confchg(
            cpg,
            LONG,
            |ev| matches!(ev, CpgEvent::ConfChg { members, .. } if members.len() == 3),
        );
    }
    // The checkpoint node 2 writes during the faults, created with its sections.
    let mut writer = common::ckpt::connect(&c, 1, LONG);
    let attrs = Attributes {
        creation_flags: WR_ALL_REPLICAS,
        checkpoint_size: u64::from(SECTIONS) * 1024,
        retention_duration: TIME_END,
        max_sections: SECTIONS,
        max_section_size: 1024,
        max_section_id_size: 16,
    };
    let h = again(|| writer.open(b"rings", OPEN_CREATE | OPEN_READ | OPEN_WRITE, Some(attrs)))
        .expect("create the checkpoint");
    for s in 0..SECTIONS {
        again(|| writer.section_create(h, Some(format!("s{s}").as_bytes()), TIME_END, b""))
            .expect("section create");
    }

    let stop = AtomicBool::new(false);
    let all = [0, 1, 2];
    // The node that must see node 1's sends on network 0 go missing: its successor on the
    // ring, node 2, which takes the token from node 1 (in both modes). Node 3 hears node 1's
    // data frames but not its tokens: in active mode their share of what it receives is near
    // the bad-window threshold (20%), so it marks the network late or not at all (observed
    // 0.15 to 7.7 s, sometimes re-enabled while the cut lasts); in passive mode it has next to
    // no copies from node 1 to judge. Neither is asserted (docs/rings.md).
    let oneway_seen: &[usize] = &[1];
    let ((orders, sent), writes, phases, during) = std::thread::scope(|s| {
        let traffic = s.spawn(|| traffic_until(&mut clients, b"rings", 200, &stop));
        let ckpt = s.spawn(|| ckpt_writes_until(&mut writer, &stop));
        std::thread::sleep(Duration::from_millis(300));
        let mut phases = Vec::new();
        let mut during = Vec::new();

        // 1. Cut: every host's port on br0 down.
        lab.cut_network(0).expect("cut network 0");
        let (marked_after, states) = wait_net0(&c, "cut: marked faulty", &all, |s| s != 0);
        during.extend((0..3).map(|i| ring_status(&c, i)));
        std::thread::sleep(HOLD);
        lab.heal_network(0).expect("heal network 0");
        let (reenabled_after, _) = wait_net0(&c, "cut: re-enabled", &all, |s| s == 0);
        phases.push(Phase {
            name: "cut",
            marked_after,
            states,
            reenabled_after,
        });

        // 2. Lossy: every link of network 0 loses half its frames.
        set_faults(&fault_file, "0 lossy 0.5\n");
        let (marked_after, states) = wait_net0(&c, "lossy: marked faulty", &all, |s| s != 0);
        during.extend((0..3).map(|i| ring_status(&c, i)));
        std::thread::sleep(HOLD);
        set_faults(&fault_file, "");
        let (reenabled_after, _) = wait_net0(&c, "lossy: re-enabled", &all, |s| s == 0);
        phases.push(Phase {
            name: "lossy 50%",
            marked_after,
            states,
            reenabled_after,
        });

        // 3. One-way: node 1's sends on network 0 lost (at nodes 2 and 3), its receives intact.
        set_faults(&fault_file, "0 oneway 1 2\n0 oneway 1 3\n");
        let (marked_after, states) =
            wait_net0(&c, "one-way: marked faulty", oneway_seen, |s| s != 0);
        during.extend(oneway_seen.iter().map(|&i| ring_status(&c, i)));
        std::thread::sleep(HOLD);
        let states_later = net0_states(&c);
        set_faults(&fault_file, "");
        let (reenabled_after, _) = wait_net0(&c, "one-way: re-enabled", &all, |s| s == 0);
        assert_eq!(
            (states[0], states_later[0]),
            (0, 0),
            "one-way: node 1 receives intact on network 0 and must not mark it \
             (states {states:?}, then {states_later:?})"
        );
        phases.push(Phase {
            name: "one-way from node 1",
            marked_after,
            states,
            reenabled_after,
        });

        // Some traffic with every network working, then stop.
        std::thread::sleep(Duration::from_millis(200));
        stop.store(true, Ordering::Release);
        let writes = ckpt.join().expect("ckpt writer");
        (traffic.join().expect("traffic"), writes, phases, during)
    });
    for p in &phases {
        eprintln!(
            "{mode}: network 0 {}: marked at nodes 1..3 after {:?} (states {:?}: \
             1 lost, 2 one-way, 3 lossy); fault removed: re-enabled after {:?}",
            p.name, p.marked_after, p.states, p.reenabled_after
        );
    }
    eprintln!("{mode}: {sent} CPG messages, {writes} CKPT writes during the faults");
    for (code, text) in &during {
        assert_eq!(
            *code, 2,
            "aisctl ring status while network 0 is faulty: {text}"
        );
        assert!(text.contains("faulty"), "{text}");
    }
    for p in &phases {
        assert!(
            last(&p.reenabled_after) < REENABLE_BOUND,
            "{}: network 0 re-enabled after {:?}",
            p.name,
            p.reenabled_after
        );
    }
    // Active mode: node 2 misses every copy from node 1 on network 0, so its last judging
    // window names the cause one-way, or lost when that window held copies from node 1 only
    // (a loaded machine); never lossy, which needs every sender's copies partly through.
    if mode == "active" {
        assert!(
            matches!(phases[2].states[1], 1 | 2),
            "node 2 names the cause one-way (or lost), not {}",
            phases[2].states[1]
        );
    }
    assert!(sent > 0 && writes > 0);
    // What ended a ring, per node, so that a failure says whether a network fault or the
    // machine (a process not run for longer than the token timeout: `pauses_detected`,
    // `last_pause_ms`) caused it.
    let causes: Vec<String> = (0..3)
        .map(|i| {
            let names = [
                "token_losses",
                "failed_to_receive",
                "gathers",
                "pauses_detected",
                "last_pause_ms",
            ];
            let values: Vec<String> = names
                .iter()
                .map(|n| format!("{n} {}", c.counter(i, n)))
                .collect();
            format!("node {}: {}", i + 1, values.join(", "))
        })
        .collect();
    wait_markings_undone(&c, 0);
    for (i, before) in rings_before.iter().enumerate() {
        assert_eq!(
            c.counter(i, "rings_installed"),
            *before,
            "node {}: a configuration change during the faults ({})",
            i + 1,
            causes.join("; ")
        );
        let min = 2 + u64::from(oneway_seen.contains(&i));
        assert!(
            c.counter(i, "rrp_net0_marked_faulty") >= min,
            "node {}: network 0 marked {} times",
            i + 1,
            c.counter(i, "rrp_net0_marked_faulty")
        );
        assert_eq!(
            c.counter(i, "rrp_net0_restored"),
            c.counter(i, "rrp_net0_marked_faulty"),
            "node {}: every marking undone",
            i + 1
        );
        assert!(c.counter(i, "rrp_net0_copies_missed") > 0);
        assert_eq!(c.counter(i, "rrp_net1_marked_faulty"), 0, "node {}", i + 1);
        let (code, text) = ring_status(&c, i);
        assert_eq!(code, 0, "{text}");
    }
    assert_one_order(&orders, sent as usize);
    // No CPG membership change was queued at any client during the traffic.
    for cpg in &mut clients {
        while let Some(ev) = cpg.dispatch(Some(Duration::ZERO)).expect("dispatch") {
            assert!(
                !matches!(ev, CpgEvent::ConfChg { .. }),
                "a CPG membership change: {ev:?}"
            );
        }
    }
    // Every node reads each section's last write.
    for i in 0..3 {
        let mut k = common::ckpt::connect(&c, i, LONG);
        let h = again(|| k.open(b"rings", OPEN_READ, None)).expect("open to read");
        for s in 0..SECTIONS {
            let last = (0..writes).rev().find(|w| w % SECTIONS == s);
            let got = again(|| {
                k.read(
                    h,
                    &[ReadElement {
                        section: Bytes::from(format!("s{s}")),
                        offset: 0,
                        size: u64::MAX,
                    }],
                )
                .map_err(Error::from)
            })
            .expect("read");
            let want = last.map(ckpt_data).unwrap_or_default();
            assert!(
                got.len() == 1 && got[0][..] == want[..],
                "node {}: section s{s} is not write {last:?}",
                i + 1
            );
        }
    }
    drop(clients);
    drop(writer);
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
fn active_mode_rides_out_cut_lossy_and_one_way_networks() {
    faults_under_cpg_load("rings-active", "active");
}

#[test]
fn passive_mode_rides_out_cut_lossy_and_one_way_networks() {
    faults_under_cpg_load("rings-passive", "passive");
}

// ---------------------------------------------------------------------------------------------
// Other transports per network: multicast on both networks, and DPDK beside kernel UDP.

/// Node `node.id`'s configuration over two multicast networks (`transport = "udp"`, one group
/// per network: network 0 on `eth0`, network 1 on `eth1` through `[[totem.rrp_interface]]`).
fn multicast_config(lab: &netlab::Lab, mode: &str, node: &common::cluster::Node) -> String {
    let h = node.id as usize;
    format!(
        "[totem]\nnodeid = {}\ntransport = \"udp\"\ntoken = {TOKEN_MS}\n{}rrp_mode = \"{mode}\"\n\n\
         [totem.interface]\nbindnetaddr = \"{}\"\nmcastaddr = \"239.192.21.1\"\nmcastport = 5405\n\n\
         [[totem.rrp_interface]]\nringnumber = 1\nbindnetaddr = \"{}\"\nmcastaddr = \"239.192.21.2\"\n\n{}",
        node.id,
        key_lines(&node.dir),
        lab.addr_on(0, h),
        lab.addr_on(1, h),
        aisexec_section(node)
    )
}

/// EAL arguments for node `id`: no hugepages, lcore 0, a file prefix of its own, and one
/// `net_af_packet` port per host interface in `ifaces` (`net_af_packet<k>` on `eth<k>`).
#[cfg(feature = "dpdk")]
fn eal_args(id: u32, ifaces: &[usize]) -> String {
    let mut args = format!(
        "\"--no-huge\", \"-m\", \"256\", \"--no-pci\", \"--no-shconf\", \"--no-telemetry\", \
         \"-l\", \"0\", \"--file-prefix\", \"oaisr{id}-{}\"",
        std::process::id()
    );
    for k in ifaces {
        args += &format!(", \"--vdev=net_af_packet{k},iface=eth{k},framesz=2048,blocksz=4096\"");
    }
    args
}

/// Node `node.id`'s configuration: network 0 on DPDK (`net_af_packet0` on `eth0`), network 1
/// on DPDK too (`dpdk_both`, `net_af_packet1` on `eth1`, the same EAL) or on kernel UDP
/// unicast (`eth1`'s address). Adaptive polling (`busy_poll` off, the default).
#[cfg(feature = "dpdk")]
fn dpdk_config(
    lab: &netlab::Lab,
    mode: &str,
    dpdk_both: bool,
    node: &common::cluster::Node,
) -> String {
    let id = node.id;
    let mut t = format!(
        "[totem]\nnodeid = {id}\ntransport = \"dpdk\"\ntoken = {TOKEN_MS}\n{}rrp_mode = \"{mode}\"\n\n\
         [totem.interface]\nmcastport = 5405\n\n[[totem.rrp_interface]]\nringnumber = 1\n{}\n",
        key_lines(&node.dir),
        if dpdk_both {
            "dpdk_port = \"net_af_packet1\"\n"
        } else {
            "transport = \"udpu\"\n"
        }
    );
    // The DPDK networks learn the members' MAC addresses from their frames; ring1_addr is
    // the kernel network's address (unused by a DPDK network 1).
    for h in 1..=lab.hosts() {
        t += &format!(
            "[[nodelist.node]]\nnodeid = {h}\nring0_addr = \"{}\"\nring1_addr = \"{}\"\n\n",
            lab.addr_on(0, h),
            lab.addr_on(1, h)
        );
    }
    let ifaces: &[usize] = if dpdk_both { &[0, 1] } else { &[0] };
    t += &format!(
        "[dpdk]\nport = \"net_af_packet0\"\nmin_data_room = {}\nmbufs = 4095\neal_args = [{}]\n\n",
        2048 + 128,
        eal_args(id, ifaces)
    );
    t + &aisexec_section(node)
}

/// Three executives on `lab` with `config`; under CPG load from every node (200-byte
/// messages, every third safe), each network of `cuts` in turn is cut (every host's port on
/// its bridge down), held [`HOLD`] after every node marked it, and healed; then, with
/// `lossy`, that network loses half of every link's frames (`--test-fault-file`), held and
/// removed the same way. Checked: no
/// configuration change at any node (`rings_installed`, and no CPG membership change queued
/// at a client), every message delivered once and in one order everywhere, the event-log
/// checker on the three logs, each cut network marked faulty by every node and re-enabled by
/// itself at every node within [`REENABLE_BOUND`], every marking matched by a restoring.
/// The per-node times are printed (`--nocapture`).
fn cuts_under_cpg_load(
    lab: &netlab::Lab,
    name: &str,
    config: impl Fn(&common::cluster::Node) -> String,
    cuts: &[usize],
    lossy: Option<usize>,
    expect_in_log: &str,
) {
    // With `lossy`, every executive reads a fault file (kernel UDP networks only).
    let mut fault_file = PathBuf::new();
    let mut c = Cluster::new_with_args(name, 3, config, lab_netns(lab), |dir| {
        if lossy.is_none() {
            return Vec::new();
        }
        fault_file = dir.join("faults");
        vec!["--test-fault-file".into(), fault_file.clone().into()]
    });
    c.start_all();
    for i in 0..3 {
        c.wait_ring(i, &[1, 2, 3], LONG);
    }
    for i in 0..3 {
        assert_eq!(c.counter(i, "rrp_networks"), 2, "node {}", i + 1);
        let log = std::fs::read_to_string(c.node(i).dir.join("aisexec.log")).unwrap_or_default();
        assert!(
            log.contains(expect_in_log),
            "node {}: no {expect_in_log:?} in its log",
            i + 1
        );
    }
    let rings_before: Vec<u64> = (0..3).map(|i| c.counter(i, "rings_installed")).collect();
    let mut clients: Vec<Cpg> = (0..3).map(|i| c.cpg(i)).collect();
    for cpg in &mut clients {
        cpg.join(b"rings").expect("join");
    }
    for cpg in &mut clients {
        common::cluster::wait_confchg(
            cpg,
            LONG,
            |ev| matches!(ev, CpgEvent::ConfChg { members, .. } if members.len() == 3),
        );
    }
    let stop = AtomicBool::new(false);
    let all = [0, 1, 2];
    let ((orders, sent), phases) = std::thread::scope(|s| {
        let traffic = s.spawn(|| traffic_until(&mut clients, b"rings", 200, &stop));
        std::thread::sleep(Duration::from_millis(300));
        let mut phases = Vec::new();
        for &net in cuts {
            lab.cut_network(net).expect("cut");
            let (marked, states) = wait_net(&c, net, "cut: marked faulty", &all, |s| s != 0);
            std::thread::sleep(HOLD);
            lab.heal_network(net).expect("heal");
            let (reenabled, _) = wait_net(&c, net, "cut: re-enabled", &all, |s| s == 0);
            phases.push((net, marked, states, reenabled));
        }
        // Then, if asked, network `net` loses half of every link's frames.
        if let Some(net) = lossy {
            set_faults(&fault_file, &format!("{net} lossy 0.5\n"));
            let (marked, states) = wait_net(&c, net, "lossy: marked faulty", &all, |s| s != 0);
            std::thread::sleep(HOLD);
            set_faults(&fault_file, "");
            let (reenabled, _) = wait_net(&c, net, "lossy: re-enabled", &all, |s| s == 0);
            phases.push((net, marked, states, reenabled));
        }
        std::thread::sleep(Duration::from_millis(200));
        stop.store(true, Ordering::Release);
        (traffic.join().expect("traffic"), phases)
    });
    for (net, marked, states, reenabled) in &phases {
        eprintln!(
            "{name}: network {net} cut (or, after the cuts, lossy): marked at nodes 1..3 after \
             {marked:?} (states {states:?}); healed: re-enabled after {reenabled:?}"
        );
    }
    eprintln!("{name}: {sent} CPG messages during the cuts");
    for (net, _, _, reenabled) in &phases {
        assert!(
            last(reenabled) < REENABLE_BOUND,
            "network {net} re-enabled after {reenabled:?}"
        );
    }
    assert!(sent > 0);
    for net in 0..2 {
        wait_markings_undone(&c, net);
    }
    for (i, before) in rings_before.iter().enumerate() {
        assert_eq!(
            c.counter(i, "rings_installed"),
            *before,
            "node {}: a configuration change during the cuts (token_losses {}, \
             failed_to_receive {}, pauses_detected {}, last_pause_ms {})",
            i + 1,
            c.counter(i, "token_losses"),
            c.counter(i, "failed_to_receive"),
            c.counter(i, "pauses_detected"),
            c.counter(i, "last_pause_ms"),
        );
        for net in 0..2 {
            let marked = c.counter(i, &format!("rrp_net{net}_marked_faulty"));
            if cuts.contains(&net) {
                assert!(marked >= 1, "node {}: network {net} never marked", i + 1);
            }
            assert_eq!(
                c.counter(i, &format!("rrp_net{net}_restored")),
                marked,
                "node {}: network {net}: every marking undone",
                i + 1
            );
        }
    }
    assert_one_order(&orders, sent as usize);
    for cpg in &mut clients {
        while let Some(ev) = cpg.dispatch(Some(Duration::ZERO)).expect("dispatch") {
            assert!(
                !matches!(ev, CpgEvent::ConfChg { .. }),
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
}

/// (a) Multicast on both networks (one group each), active mode: network 0 cut, then
/// network 1, then network 0 lossy (50% of every link's frames, multicast included, through
/// the fault-injecting wrapper).
#[test]
fn multicast_on_two_networks_rides_out_cuts_and_a_lossy_network() {
    let lab = netlab::Lab::with_networks(3, 2, 1500).expect("network-namespace lab");
    cuts_under_cpg_load(
        &lab,
        "rings-mcast",
        |node| multicast_config(&lab, "active", node),
        &[0, 1],
        Some(0),
        "networks (0 udp, 1 udp)",
    );
}

/// (b) The ATCA case: network 0 through DPDK (`net_af_packet` on `eth0`), network 1 through
/// the kernel (UDP unicast on `eth1`), active mode: network 0 cut, then network 1.
///
/// Assumes: root, DPDK 22.11's af_packet PMD, built with `--features ais/dpdk`; every EAL
/// on lcore 0 without hugepages, adaptive polling (three busy pollers would starve this
/// 2-core machine). With a DPDK network the driver cannot wait on every network at once: it
/// naps on network 0 (DPDK's back-off) for at most 500 µs and then polls network 1, so the
/// kernel network's frames wait up to 500 µs longer (no assertion is about time).
#[cfg(feature = "dpdk")]
#[test]
fn dpdk_and_kernel_udp_networks_ride_out_a_cut_of_either() {
    let lab = netlab::Lab::with_networks(3, 2, 1500).expect("network-namespace lab");
    cuts_under_cpg_load(
        &lab,
        "rings-dpdk-udp",
        |node| dpdk_config(&lab, "active", false, node),
        &[0, 1],
        None,
        "networks (0 dpdk, 1 udpu)",
    );
    for id in 1..=3 {
        let _ = std::fs::remove_dir_all(format!("/var/run/dpdk/oaisr{id}-{}", std::process::id()));
    }
}

/// DPDK on both networks (two `net_af_packet` ports of one EAL per process), passive mode:
/// network 1 cut. Assumes what the test above does.
#[cfg(feature = "dpdk")]
#[test]
fn dpdk_on_two_networks_rides_out_a_cut() {
    let lab = netlab::Lab::with_networks(3, 2, 1500).expect("network-namespace lab");
    cuts_under_cpg_load(
        &lab,
        "rings-dpdk-2",
        |node| dpdk_config(&lab, "passive", true, node),
        &[1],
        None,
        "networks (0 dpdk, 1 dpdk)",
    );
    for id in 1..=3 {
        let _ = std::fs::remove_dir_all(format!("/var/run/dpdk/oaisr{id}-{}", std::process::id()));
    }
}
