//! `service` lines: what services above Totem report (the executive's quorum changes) in the
//! same log. They round-trip, logs without them read as before, every other reader rule still
//! holds (unknown kinds are refused), and the checker counts them and checks nothing of them:
//! not the node's time order, not a crashed node's silence, not where a killed node's log ends.

use serde_json::json;
use totem_dpdk::{NodeId, RingId};
use totem_evlog::checker::{self, CheckParams, Property, Report};
use totem_evlog::log::{EventLog, LogEvent, ServiceEvent, read_log};

fn read(text: &str) -> Vec<LogEvent> {
    read_log(text.as_bytes()).unwrap_or_else(|e| panic!("{e}\n{text}"))
}

fn quorum_line(t: u64, node: u32, what: &str, ring: Option<u64>) -> ServiceEvent {
    let data = json!({"votes": 2, "expected_votes": 3, "quorum": 2, "suspended": false});
    ServiceEvent {
        t,
        node: NodeId(node),
        service: "quorum".to_owned(),
        what: what.to_owned(),
        ring: ring.map(|seq| RingId {
            rep: NodeId(1),
            seq,
        }),
        data: data.as_object().cloned().unwrap_or_default(),
    }
}

/// A clean run of two nodes: ring 1.4 of both, one agreed message from each; node 2 then
/// crashes and restarts alone in ring 2.8.
const OLD_LOG: &str = r#"{"t":10,"node":1,"ev":"config","kind":"regular","ring":"1.4","members":[1,2],"joined":[1,2]}
{"t":11,"node":2,"ev":"config","kind":"regular","ring":"1.4","members":[1,2],"joined":[1,2]}
{"t":20,"node":1,"ev":"send","msg":"1:1","len":3,"hash":"ba7816bf8f01cfea","kind":"agreed","prio":1}
{"t":21,"node":2,"ev":"send","msg":"2:1","len":3,"hash":"ba7816bf8f01cfea","kind":"agreed","prio":1}
{"t":30,"node":1,"ev":"deliver","msg":"1:1","ring":"1.4","seq":1,"kind":"agreed","hash":"ba7816bf8f01cfea","len":3}
{"t":31,"node":2,"ev":"deliver","msg":"1:1","ring":"1.4","seq":1,"kind":"agreed","hash":"ba7816bf8f01cfea","len":3}
{"t":32,"node":1,"ev":"deliver","msg":"2:1","ring":"1.4","seq":2,"kind":"agreed","hash":"ba7816bf8f01cfea","len":3}
{"t":33,"node":2,"ev":"deliver","msg":"2:1","ring":"1.4","seq":2,"kind":"agreed","hash":"ba7816bf8f01cfea","len":3}
{"t":40,"node":2,"ev":"crash"}
{"t":50,"node":2,"ev":"restart"}
{"t":60,"node":2,"ev":"config","kind":"regular","ring":"2.8","members":[2],"joined":[2]}
"#;

#[test]
fn a_service_line_round_trips_in_the_documented_form() {
    let ev = LogEvent::Service(quorum_line(1500, 2, "quorate", Some(8)));
    let mut log = EventLog::new(Vec::new());
    log.write(&ev).unwrap();
    let text = String::from_utf8(log.into_inner()).unwrap();
    assert_eq!(
        text,
        "{\"t\":1500,\"node\":2,\"ev\":\"service\",\"service\":\"quorum\",\"what\":\"quorate\",\
         \"ring\":\"1.8\",\"data\":{\"expected_votes\":3,\"quorum\":2,\"suspended\":false,\
         \"votes\":2}}\n"
    );
    assert_eq!(read(&text), std::slice::from_ref(&ev));
    assert_eq!(ev.name(), "service");
    assert_eq!((ev.t(), ev.node()), (Some(1500), Some(NodeId(2))));

    // Without a ring and data, neither is written; readers take any field order.
    let bare = ServiceEvent {
        ring: None,
        data: serde_json::Map::new(),
        ..quorum_line(7, 3, "not_quorate", None)
    };
    let mut log = EventLog::new(Vec::new());
    log.write(&LogEvent::Service(bare.clone())).unwrap();
    let text = String::from_utf8(log.into_inner()).unwrap();
    assert_eq!(
        text,
        "{\"t\":7,\"node\":3,\"ev\":\"service\",\"service\":\"quorum\",\"what\":\"not_quorate\"}\n"
    );
    let reordered =
        r#"{"what":"not_quorate","service":"quorum","ev":"service","node":3,"t":7,"extra":1}"#;
    assert_eq!(read(reordered), [LogEvent::Service(bare)]);
}

#[test]
fn the_reader_still_refuses_what_it_does_not_know() {
    for bad in [
        // Unknown kinds stay errors: only `service` is open-ended.
        r#"{"t":1,"node":1,"ev":"quorum","what":"quorate"}"#,
        // `service` and `what` are required and not empty.
        r#"{"t":1,"node":1,"ev":"service","what":"quorate"}"#,
        r#"{"t":1,"node":1,"ev":"service","service":"quorum"}"#,
        r#"{"t":1,"node":1,"ev":"service","service":"","what":"quorate"}"#,
        r#"{"t":1,"node":1,"ev":"service","service":"quorum","what":""}"#,
        // Like every event but `meta`, `t` and `node`.
        r#"{"node":1,"ev":"service","service":"quorum","what":"quorate"}"#,
        // A ring is REP.SEQ; data is an object.
        r#"{"t":1,"node":1,"ev":"service","service":"quorum","what":"quorate","ring":"8"}"#,
        r#"{"t":1,"node":1,"ev":"service","service":"quorum","what":"quorate","data":[1]}"#,
    ] {
        assert!(read_log(bad.as_bytes()).is_err(), "accepted {bad}");
    }
}

#[test]
fn an_old_log_reads_and_checks_as_before() {
    let events = read(OLD_LOG);
    assert_eq!(events.len(), 11);
    let report = checker::check(&events, &CheckParams::default());
    assert!(report.is_ok(), "{report}");
    assert_eq!((report.service, report.nodes, report.rings), (0, 2, 2));
}

/// `OLD_LOG` with service lines where a checked event would break property 11: node 2 going
/// back in time, and node 2 logging while crashed; and a line from a node (3) that logs
/// nothing else.
fn with_service_lines() -> Vec<LogEvent> {
    let mut events = read(OLD_LOG);
    let at = |events: &[LogEvent], name: &str| {
        events
            .iter()
            .position(|e| e.name() == name)
            .expect("event in OLD_LOG")
    };
    let crash = at(&events, "crash");
    events.insert(
        crash + 1,
        LogEvent::Service(quorum_line(45, 2, "not_quorate", None)),
    );
    events.insert(2, LogEvent::Service(quorum_line(1, 2, "quorate", Some(4))));
    events.push(LogEvent::Service(quorum_line(99, 3, "quorate", Some(8))));
    events
}

#[test]
fn the_checker_counts_service_lines_and_checks_nothing_of_them() {
    let plain = checker::check(&read(OLD_LOG), &CheckParams::default());
    let events = with_service_lines();
    let report = checker::check(&events, &CheckParams::default());
    assert!(report.is_ok(), "{report}");
    assert_eq!(report.service, 3);
    assert_eq!(report.events, plain.events + 3);
    let same = Report {
        service: 0,
        events: plain.events,
        ..report.clone()
    };
    assert_eq!(same, plain, "nothing else changes: not even the node count");
    assert!(
        report.to_string().contains("3 service (not checked)"),
        "{report}"
    );

    // The same misplaced lines as Totem events are violations: the lines above would have
    // been caught had the checker read them.
    let as_totem: Vec<LogEvent> = events
        .iter()
        .map(|e| match e {
            LogEvent::Service(s) => LogEvent::Stored(totem_evlog::log::StoredEvent {
                t: s.t,
                node: s.node,
                ring: RingId {
                    rep: NodeId(1),
                    seq: 4,
                },
                seq: totem_dpdk::Seq(1),
            }),
            other => other.clone(),
        })
        .collect();
    let caught = checker::check(&as_totem, &CheckParams::default());
    assert_eq!(caught.count(Property::WellFormedLog), 2, "{caught}");
}

/// Node 3 is killed after its configuration; node 1 then delivers a safe message and reports
/// node 3 failed. Node 3's log cannot show whether it stored the frame, so the checker asks
/// nothing of it after its last Totem line, also when a `service` line (written on the
/// executive's thread, possibly after Totem events still on their way) comes later.
#[test]
fn a_service_line_does_not_extend_a_killed_nodes_log() {
    let dir = std::env::temp_dir().join(format!("evlog-service-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let node1 = [
        r#"{"t":10,"node":1,"ev":"config","kind":"regular","ring":"1.8","members":[1,3],"joined":[1,3]}"#,
        r#"{"t":20,"node":1,"ev":"send","msg":"1:1","len":5,"hash":"0000000000000001","kind":"safe","prio":1}"#,
        r#"{"t":30,"node":1,"ev":"stored","ring":"1.8","seq":1}"#,
        r#"{"t":40,"node":1,"ev":"deliver","msg":"1:1","ring":"1.8","seq":1,"kind":"safe","hash":"0000000000000001","len":5}"#,
        r#"{"t":50,"node":1,"ev":"config","kind":"transitional","ring":"1.8","members":[1],"failed":[3]}"#,
        r#"{"t":51,"node":1,"ev":"config","kind":"regular","ring":"1.12","members":[1],"failed":[3]}"#,
    ]
    .join("\n")
        + "\n";
    let node3 = |last: &str| {
        format!(
            "{}\n{last}\n",
            r#"{"t":11,"node":3,"ev":"config","kind":"regular","ring":"1.8","members":[1,3],"joined":[1,3]}"#
        )
    };
    let (p1, p3) = (dir.join("node1.jsonl"), dir.join("node3.jsonl"));
    std::fs::write(&p1, node1).unwrap();
    std::fs::write(
        &p3,
        node3(
            r#"{"t":45,"node":3,"ev":"service","service":"quorum","what":"quorate","ring":"1.8"}"#,
        ),
    )
    .unwrap();
    let report = checker::check_files(&[&p1, &p3]).unwrap();
    assert!(report.is_ok(), "{report}");
    assert_eq!(report.service, 1);
    // The same line as a Totem event does extend it: node 3 then owes the `stored`.
    std::fs::write(
        &p3,
        node3(r#"{"t":45,"node":3,"ev":"stored","ring":"1.8","seq":2}"#),
    )
    .unwrap();
    let report = checker::check_files(&[&p1, &p3]).unwrap();
    assert_eq!(report.count(Property::SafeDelivery), 1, "{report}");
    std::fs::remove_dir_all(&dir).unwrap();
}
