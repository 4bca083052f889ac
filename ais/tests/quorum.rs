//! Quorum with real executives: a three-node cluster with `[quorum]` (three expected votes)
//! is quorate; a node left alone is not, says so in its log, in `aisctl status`, to its
//! tracking clients and through `aisctl quorum status` (exit status 2); with a second node
//! back it is quorate again. An executive without `[quorum]` runs no quorum service and
//! `aisctl quorum status` says how to add one.
//!
//! Assumes: loopback only, no root, free UDP ports from the kernel, a loaded 2-core machine
//! (every wait is generous).

mod common;

use std::process::Command;
use std::time::{Duration, Instant};

use ais_client::quorum::{Quorum, QuorumState};
use common::cluster::{Cluster, free_ports, key_lines};

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

fn aisctl_quorum(c: &Cluster, i: usize) -> (i32, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_aisctl"))
        .arg("--socket")
        .arg(&c.node(i).socket)
        .args(["quorum", "status"])
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
    let (code, text) = aisctl_quorum(&c, 0);
    assert_eq!(code, 0, "{text}");
    assert!(text.contains("quorate         yes"), "{text}");

    c.kill(1);
    c.kill(2);
    c.wait_ring(0, &[1], LONG);
    let s = wait_state(&mut q1, |s| s.members == [1]);
    assert!(!s.quorate, "{s:?}");
    assert_eq!((s.total_votes, s.expected_votes, s.quorum), (1, 3, 2));
    assert_eq!(c.counter(0, "quorum_quorate"), 0);
    let (code, text) = aisctl_quorum(&c, 0);
    assert_eq!(code, 2, "not quorate: exit status 2\n{text}");
    assert!(text.contains("1 present, 3 expected, 2 needed"), "{text}");
    assert!(
        c.log(0).contains("quorum: not quorate in ring"),
        "{}",
        c.log(0)
    );

    c.start(1);
    c.wait_ring(0, &[1, 2], LONG);
    let s = wait_state(&mut q1, |s| s.members == [1, 2]);
    assert!(s.quorate, "{s:?}");
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
    let (code, text) = aisctl_quorum(&c, 0);
    assert_ne!(code, 0);
    assert!(text.contains("add a [quorum] table"), "{text}");
}
