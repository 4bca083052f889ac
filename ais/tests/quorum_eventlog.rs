//! Quorum changes in the event log of real executives (issue 16): three `aisexec` on loopback
//! with `[quorum]` (three expected votes) and `--event-log`. Node 1's log says it starts not
//! quorate, is quorate with three votes, stays quorate with two once node 3 is killed (the
//! configuration change suspends it in between), is not quorate alone once node 2 is killed
//! too, and quorate again when node 2 comes back. Every quorum line names a ring node 1
//! installed, with that ring's vote count, and the whole run still passes the checker, which
//! counts the lines and skips them.
//!
//! Assumes: free UDP ports from the kernel and a loaded 2-core machine (every wait is
//! generous).

mod common;

use std::time::{Duration, Instant};

use common::cluster::{Cluster, free_ports, key_lines};
use totem_dpdk::RingId;
use totem_evlog::log::{ConfigKind, LogEvent, ServiceEvent, read_log};

const LONG: Duration = Duration::from_secs(15);

/// One quorum line, as the test compares it.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Line {
    what: String,
    ring: Option<RingId>,
    total_votes: u64,
    expected_votes: u64,
    quorum: u64,
    suspended: bool,
}

impl Line {
    fn from(s: &ServiceEvent) -> Line {
        let num = |k: &str| {
            s.data
                .get(k)
                .and_then(serde_json::Value::as_u64)
                .unwrap_or_else(|| panic!("`{k}` missing in {s:?}"))
        };
        Line {
            what: s.what.clone(),
            ring: s.ring,
            total_votes: num("total_votes"),
            expected_votes: num("expected_votes"),
            quorum: num("quorum"),
            suspended: s
                .data
                .get("suspended")
                .and_then(serde_json::Value::as_bool)
                .unwrap_or_else(|| panic!("`suspended` missing in {s:?}")),
        }
    }

    fn quorate(&self) -> bool {
        self.what == "quorate"
    }
}

/// Node `i`'s log as written so far.
fn events(c: &Cluster, i: usize) -> Vec<LogEvent> {
    let file = std::fs::File::open(&c.node(i).events).expect("open event log");
    read_log(std::io::BufReader::new(file)).expect("read event log")
}

fn quorum_lines(events: &[LogEvent]) -> Vec<Line> {
    events
        .iter()
        .filter_map(|e| match e {
            LogEvent::Service(s) if s.service == "quorum" => Some(Line::from(s)),
            _ => None,
        })
        .collect()
}

/// Waits until node `i`'s last quorum line satisfies `want`; returns all of them.
fn wait_last(c: &Cluster, i: usize, want: impl Fn(&Line) -> bool) -> Vec<Line> {
    let deadline = Instant::now() + LONG;
    loop {
        let lines = quorum_lines(&events(c, i));
        if lines.last().is_some_and(&want) {
            return lines;
        }
        assert!(
            Instant::now() < deadline,
            "node {}: quorum lines {lines:#?}",
            i + 1
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn a_nodes_quorum_changes_are_in_its_event_log_in_order() {
    let ports = free_ports(3);
    let mut c = Cluster::new(
        "quorum-evlog",
        3,
        |node| {
            ais::harness::loopback_config(node, &ports, &(key_lines(&node.dir) + "\n"))
                + "\n[quorum]\n"
        },
        Vec::new(),
    );
    c.start_all();
    for i in 0..3 {
        c.wait_ring(i, &[1, 2, 3], LONG);
    }
    let three = |l: &Line| l.quorate() && l.total_votes == 3;
    wait_last(&c, 0, three);
    c.kill(2);
    c.wait_ring(0, &[1, 2], LONG);
    let two = |l: &Line| l.quorate() && l.total_votes == 2;
    wait_last(&c, 0, two);
    c.kill(1);
    c.wait_ring(0, &[1], LONG);
    let alone = |l: &Line| !l.quorate() && !l.suspended && l.total_votes == 1;
    wait_last(&c, 0, alone);
    c.start(1);
    c.wait_ring(0, &[1, 2], LONG);
    let lines = wait_last(&c, 0, two);

    // In order: the start, three votes, two, alone, two again.
    let first = &lines[0];
    assert_eq!(
        (first.what.as_str(), first.ring, first.suspended),
        ("not_quorate", None, false),
        "a node starts not quorate, before any ring: {lines:#?}"
    );
    let steps: [&dyn Fn(&Line) -> bool; 4] = [&three, &two, &alone, &two];
    let mut at = 1;
    for (k, step) in steps.iter().enumerate() {
        let found = lines[at..].iter().position(step);
        at += found.unwrap_or_else(|| panic!("step {k} missing after line {at}: {lines:#?}")) + 1;
    }
    // A line only when the answer changes.
    for pair in lines.windows(2) {
        assert_ne!(
            (pair[0].quorate(), pair[0].suspended),
            (pair[1].quorate(), pair[1].suspended),
            "{lines:#?}"
        );
    }
    // Each line names a ring node 1 installed, with its members' votes (one each), against
    // three expected and two needed; a suspended line keeps the ending ring's numbers.
    let log = events(&c, 0);
    let rings: Vec<(RingId, u64)> = log
        .iter()
        .filter_map(|e| match e {
            LogEvent::Config(cfg) if cfg.kind == ConfigKind::Regular => {
                Some((cfg.ring, cfg.members.len() as u64))
            }
            _ => None,
        })
        .collect();
    for l in &lines[1..] {
        let ring = l.ring.unwrap_or_else(|| panic!("no ring in {l:?}"));
        let members = rings
            .iter()
            .find(|(r, _)| *r == ring)
            .unwrap_or_else(|| panic!("{l:?}: ring not installed by node 1 ({rings:?})"))
            .1;
        assert_eq!(l.total_votes, members, "{l:?}");
        assert_eq!((l.expected_votes, l.quorum), (3, 2), "{l:?}");
        assert_eq!(l.quorate(), l.total_votes >= 2 && !l.suspended, "{l:?}");
    }
    // The quorum lines follow the node's configurations: the line after a ring's
    // configuration names that ring.
    let mut current = None;
    for e in &log {
        match e {
            LogEvent::Config(cfg) if cfg.kind == ConfigKind::Regular => current = Some(cfg.ring),
            LogEvent::Service(s) if s.service == "quorum" && current.is_some() => {
                assert_eq!(s.ring, current, "{s:?}");
            }
            _ => {}
        }
    }

    for i in 0..2 {
        c.terminate(i);
    }
    let report = c.check_logs();
    assert!(report.is_ok(), "{report}");
    assert!(report.service >= lines.len() as u64, "{report}");
}
