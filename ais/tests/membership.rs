//! CLM and quorum with real executives: a three-node cluster with `[quorum]` (three expected
//! votes) shows one CLM view of three nodes at every node and is quorate; a node left alone
//! tells its CLM trackers who left, is not quorate, and says so in its log, in `aisctl
//! status`, to its quorum trackers and through `aisctl quorum status` (exit status 2); with a
//! second node back the node is told it joined and the pair is quorate again. An executive
//! without `[quorum]` runs no quorum service and `aisctl quorum status` says how to add one.
//! In network namespaces, a partition leaves quorum to the majority side only, and after the
//! heal every node shows the same view and is quorate.
//!
//! Assumes: free UDP ports from the kernel and a loaded 2-core machine (every wait is
//! generous); the namespace test needs root (CI runs as root) and `ip` from iproute2, and
//! creates and deletes its own lab.

mod common;

use std::process::Command;
use std::time::{Duration, Instant};

use ais_client::clm::{self, Change, Clm, ClmEvent, NodeAddress};
use ais_client::quorum::{Quorum, QuorumState};
use common::cluster::{Cluster, Mode, free_ports, key_lines, lab_netns, netns_config};

const LONG: Duration = Duration::from_secs(15);

fn with_quorum(name: &str, n: usize) -> Cluster {
    let ports = free_ports(n);
    Cluster::new(
        name,
        n,
        |node| {
            ais::harness::loopback_config(node, &ports, &(key_lines(&node.dir) + "\n"))
                + "\n[quorum]\n"
        },
        Vec::new(),
    )
}

/// Waits until `q` reports a state that `want` accepts.
fn wait_state(q: &mut Quorum, want: impl Fn(&QuorumState) -> bool) -> QuorumState {
    let deadline = Instant::now() + LONG;
    loop {
        let s = q.get().expect("quorum get");
        if want(&s) {
            return s;
        }
        assert!(Instant::now() < deadline, "quorum state stayed {s:?}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn aisctl(c: &Cluster, i: usize, args: &[&str]) -> (i32, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_aisctl"))
        .arg("--socket")
        .arg(&c.node(i).socket)
        .args(args)
        .output()
        .expect("run aisctl");
    let text =
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    (out.status.code().unwrap_or(-1), text)
}

#[test]
fn a_lone_node_of_three_loses_quorum_and_a_pair_regains_it() {
    let mut c = with_quorum("quorum", 3);
    c.start_all();
    for i in 0..3 {
        c.wait_ring(i, &[1, 2, 3], LONG);
    }
    let mut q1 = Quorum::connect(&c.node(0).socket).expect("quorum connection");
    let s = wait_state(&mut q1, |s| s.members == [1, 2, 3]);
    assert!(s.quorate, "{s:?}");
    assert_eq!((s.total_votes, s.expected_votes, s.quorum), (3, 3, 2));
    for i in 1..3 {
        let mut q = Quorum::connect(&c.node(i).socket).expect("quorum connection");
        let other = wait_state(&mut q, |s| s.members == [1, 2, 3]);
        assert_eq!(other, s, "every member computes the same quorum");
    }
    let mut tracker = Quorum::connect(&c.node(0).socket).expect("quorum connection");
    tracker.track(true).expect("track");
    // CLM: one view of the three, with what each node says of itself.
    let mut clm1 = Clm::connect(&c.node(0).socket).expect("clm connection");
    let view = clm1
        .track(clm::TRACK_CURRENT | clm::TRACK_CHANGES_ONLY)
        .expect("track")
        .expect("current view");
    let ids: Vec<u32> = view.items.iter().map(|(n, _)| n.node_id).collect();
    assert_eq!((ids, view.members), (vec![1, 2, 3], 3));
    assert!(
        view.items
            .iter()
            .all(|(n, _)| n.address == NodeAddress::V4([127, 0, 0, 1]) && !n.name.is_empty())
    );
    let mut clm3 = Clm::connect(&c.node(2).socket).expect("clm connection");
    let other = clm3
        .track(clm::TRACK_CURRENT)
        .expect("track")
        .expect("view");
    assert_eq!(other, view, "every member shows the same view");
    let (code, text) = aisctl(&c, 0, &["clm", "status"]);
    assert_eq!(code, 0, "{text}");
    assert_eq!(text.matches("first view").count(), 3, "{text}");
    assert!(text.contains("3 member(s); quorate"), "{text}");
    let (code, text) = aisctl(&c, 0, &["quorum", "status"]);
    assert_eq!(code, 0, "{text}");
    assert!(text.contains("quorate         yes"), "{text}");

    c.kill(1);
    c.kill(2);
    c.wait_ring(0, &[1], LONG);
    let s = wait_state(&mut q1, |s| s.members == [1]);
    assert!(!s.quorate, "{s:?}");
    assert_eq!((s.total_votes, s.expected_votes, s.quorum), (1, 3, 2));
    assert_eq!(c.counter(0, "quorum_quorate"), 0);
    let (code, text) = aisctl(&c, 0, &["clm", "status"]);
    assert_eq!(code, 0, "{text}");
    assert!(text.contains("1 member(s); NOT quorate"), "{text}");
    let (code, text) = aisctl(&c, 0, &["quorum", "status"]);
    assert_eq!(code, 2, "not quorate: exit status 2\n{text}");
    assert!(text.contains("1 present, 3 expected, 2 needed"), "{text}");
    assert!(
        c.log(0).contains("quorum: not quorate in ring"),
        "{}",
        c.log(0)
    );
    // Node 1 may see the two go in one change or two.
    let changes = clm_changes_until(&mut clm1, 1);
    let gone: Vec<(u32, Change, bool)> = changes
        .iter()
        .flat_map(|v| &v.items)
        .map(|(n, ch)| (n.node_id, *ch, n.member))
        .collect();
    assert_eq!(gone, [(2, Change::Left, false), (3, Change::Left, false)]);
    assert_eq!(
        clm1.node_get(2, LONG).unwrap_err().ais_error(),
        Some(ais_client::AisError::NotExist)
    );

    c.start(1);
    c.wait_ring(0, &[1, 2], LONG);
    let s = wait_state(&mut q1, |s| s.members == [1, 2]);
    assert!(s.quorate, "{s:?}");
    let back = clm_changes_until(&mut clm1, 2).pop().expect("a change");
    assert_eq!(back.items.len(), 1, "{back:?}");
    assert_eq!(
        (back.items[0].0.node_id, back.items[0].1),
        (2, Change::Joined)
    );
    assert!(
        back.items[0].0.initial_view_number > view.view_number,
        "a restarted node says its first view is the new one: {back:?}"
    );
    // The tracker heard every configuration, the last with the pair.
    let mut last = None;
    while let Some(s) = tracker
        .dispatch(Some(Duration::from_millis(500)))
        .expect("dispatch")
    {
        last = Some(s);
    }
    let last = last.expect("quorum callbacks");
    assert!(last.quorate && last.members == [1, 2], "{last:?}");
}

#[test]
fn without_a_quorum_table_aisctl_says_what_to_add() {
    let mut c = Cluster::loopback("noquorum", 1, "");
    c.start_all();
    c.wait_ring(0, &[1], LONG);
    let (code, text) = aisctl(&c, 0, &["quorum", "status"]);
    assert_ne!(code, 0);
    assert!(text.contains("add a [quorum] table"), "{text}");
}

/// The CLM track callbacks until one with `members` members (changes-only tracking).
fn clm_changes_until(clm: &mut Clm, members: u32) -> Vec<ais_client::clm::View> {
    let deadline = Instant::now() + LONG;
    let mut seen = Vec::new();
    loop {
        assert!(
            Instant::now() < deadline,
            "no CLM view of {members}: {seen:?}"
        );
        if let Some(ClmEvent::Track(v)) = clm
            .dispatch(Some(Duration::from_secs(1)))
            .expect("dispatch")
        {
            let done = v.members == members;
            seen.push(v);
            if done {
                return seen;
            }
        }
    }
}

#[test]
fn a_partition_leaves_quorum_to_the_majority_and_the_heal_one_view() {
    let lab = netlab::Lab::new(3, 1500).expect("network-namespace lab");
    let mut c = Cluster::new(
        "membership-netns",
        3,
        |node| netns_config(Mode::Unicast, 1500, node, &lab) + "\n[quorum]\n",
        lab_netns(&lab),
    );
    c.start_all();
    for i in 0..3 {
        c.wait_ring(i, &[1, 2, 3], LONG);
    }
    let mut q: Vec<Quorum> = (0..3)
        .map(|i| Quorum::connect(&c.node(i).socket).expect("quorum connection"))
        .collect();
    for x in &mut q {
        assert!(wait_state(x, |s| s.members == [1, 2, 3]).quorate);
    }
    lab.cut(3).expect("cut");
    c.wait_ring(0, &[1, 2], LONG);
    c.wait_ring(2, &[3], LONG);
    let majority = wait_state(&mut q[0], |s| s.members == [1, 2]);
    let minority = wait_state(&mut q[2], |s| s.members == [3]);
    assert!(majority.quorate, "{majority:?}");
    assert!(!minority.quorate, "{minority:?}");
    let mut clm: Vec<Clm> = (0..3)
        .map(|i| Clm::connect(&c.node(i).socket).expect("clm connection"))
        .collect();
    let side = |clm: &mut Clm| -> Vec<u32> {
        let v = clm.track(clm::TRACK_CURRENT).expect("track").expect("view");
        v.items.iter().map(|(n, _)| n.node_id).collect()
    };
    assert_eq!(side(&mut clm[0]), [1, 2]);
    assert_eq!(side(&mut clm[2]), [3]);
    lab.heal(3).expect("heal");
    for i in 0..3 {
        c.wait_ring(i, &[1, 2, 3], LONG);
    }
    let mut views = Vec::new();
    for i in 0..3 {
        assert!(wait_state(&mut q[i], |s| s.members == [1, 2, 3]).quorate);
        views.push(
            clm[i]
                .track(clm::TRACK_CURRENT)
                .expect("track")
                .expect("view"),
        );
    }
    assert_eq!(views[0].members, 3);
    assert!(views.iter().all(|v| *v == views[0]), "one view: {views:?}");
    drop((q, clm));
    drop(c);
    drop(lab);
}
