//! The checker can fail: a small valid history passes with zero violations, and each broken
//! variant of it is reported under exactly the property it breaks. Also: every event kind
//! serializes to the documented line and parses back.

use std::collections::{HashMap, VecDeque};

use totem_dpdk::{DeliveryKind, MsgId, NodeId, RingId, Seq};
use totem_sim::checker::{CheckParams, Property, Report, check, check_file};
use totem_sim::log::{
    ConfigEvent, ConfigKind, DeliverEvent, EventLog, LogError, LogEvent, Meta, SendEvent,
    StoredEvent, TokenEvent, payload_hash, read_log,
};

fn n(id: u32) -> NodeId {
    NodeId(id)
}

fn ring(rep: u32, seq: u64) -> RingId {
    RingId {
        rep: NodeId(rep),
        seq,
    }
}

fn mid(sender: u32, no: u64) -> MsgId {
    MsgId {
        sender: NodeId(sender),
        no,
    }
}

fn ids(list: &[u32]) -> Vec<NodeId> {
    list.iter().copied().map(NodeId).collect()
}

const R1: RingId = RingId {
    rep: NodeId(1),
    seq: 4,
};
const R2: RingId = RingId {
    rep: NodeId(1),
    seq: 8,
};
const R3: RingId = RingId {
    rep: NodeId(3),
    seq: 12,
};

/// The ring-wide token state, so that `visit` writes consistent `fcc`/`backlog`/`seq` fields.
struct TokenModel {
    size: usize,
    token_seq: u64,
    seq: u64,
    window: VecDeque<(u32, u32)>,
}

/// Builds a history one event at a time.
#[derive(Default)]
struct History {
    events: Vec<LogEvent>,
    sent: HashMap<MsgId, (Vec<u8>, DeliveryKind)>,
    tokens: HashMap<RingId, TokenModel>,
}

impl History {
    fn push(&mut self, ev: LogEvent) -> &mut Self {
        self.events.push(ev);
        self
    }

    fn meta(&mut self, nodes: u32, drained: bool) -> &mut Self {
        self.push(LogEvent::Meta(Meta {
            nodes: Some(nodes),
            window_size: Some(50),
            max_messages: Some(17),
            max_rtr: Some(30),
            drained: Some(drained),
        }))
    }

    #[allow(clippy::too_many_arguments)]
    fn config(
        &mut self,
        t: u64,
        node: u32,
        kind: ConfigKind,
        ring: RingId,
        members: &[u32],
        left: &[u32],
        joined: &[u32],
    ) -> &mut Self {
        self.push(LogEvent::Config(ConfigEvent {
            t,
            node: n(node),
            kind,
            ring,
            members: ids(members),
            left: ids(left),
            joined: ids(joined),
            failed: vec![],
        }))
    }

    fn regular(&mut self, t: u64, node: u32, ring: RingId, members: &[u32]) -> &mut Self {
        self.config(t, node, ConfigKind::Regular, ring, members, &[], &[])
    }

    fn send(&mut self, t: u64, node: u32, no: u64, payload: &str, kind: DeliveryKind) -> &mut Self {
        let msg = mid(node, no);
        self.sent.insert(msg, (payload.as_bytes().to_vec(), kind));
        self.push(LogEvent::Send(SendEvent::new(
            t,
            n(node),
            msg,
            kind,
            2,
            payload.as_bytes(),
        )))
    }

    fn deliver(&mut self, t: u64, node: u32, msg: MsgId, ring: RingId, seq: u64) -> &mut Self {
        let (payload, kind) = self.sent[&msg].clone();
        self.push(LogEvent::Deliver(DeliverEvent::new(
            t,
            n(node),
            msg,
            ring,
            Seq(seq),
            kind,
            &payload,
        )))
    }

    fn stored(&mut self, t: u64, node: u32, ring: RingId, seq: u64) -> &mut Self {
        self.push(LogEvent::Stored(StoredEvent {
            t,
            node: n(node),
            ring,
            seq: Seq(seq),
        }))
    }

    fn crash(&mut self, t: u64, node: u32) -> &mut Self {
        self.push(LogEvent::Crash { t, node: n(node) })
    }

    fn restart(&mut self, t: u64, node: u32) -> &mut Self {
        self.push(LogEvent::Restart { t, node: n(node) })
    }

    /// An accepted token visit: the node stamps `new` frames, retransmits `retrans`, reports
    /// `my_backlog`; `fcc`, `backlog`, `seq` and `token_seq` follow the model.
    #[allow(clippy::too_many_arguments)]
    fn visit(
        &mut self,
        t: u64,
        node: u32,
        ring: RingId,
        size: usize,
        (new, retrans, my_backlog): (u32, u32, u32),
        (aru, aru_addr): (u64, u32),
        rtr: &[u64],
        safe: u64,
    ) -> &mut Self {
        let m = self.tokens.entry(ring).or_insert(TokenModel {
            size,
            token_seq: 0,
            seq: 0,
            window: VecDeque::new(),
        });
        m.token_seq += 1;
        m.seq += u64::from(new);
        m.window.push_back((new + retrans, my_backlog));
        if m.window.len() > m.size {
            m.window.pop_front();
        }
        let tok = TokenEvent {
            t,
            node: n(node),
            ring,
            token_seq: m.token_seq,
            accepted: true,
            seq: Seq(m.seq),
            aru: Seq(aru),
            aru_addr: n(aru_addr),
            fcc: m.window.iter().map(|w| w.0).sum(),
            backlog: m.window.iter().map(|w| w.1).sum(),
            rtr: rtr.iter().copied().map(Seq).collect(),
            sent_new: new,
            sent_retrans: retrans,
            my_backlog,
            safe: Seq(safe),
        };
        self.push(LogEvent::Token(tok))
    }

    /// A retransmitted copy of the ring's last token, rejected by `node`.
    fn reject_last(&mut self, t: u64, node: u32, ring: RingId) -> &mut Self {
        let last = self
            .events
            .iter()
            .rev()
            .find_map(|e| match e {
                LogEvent::Token(tok) if tok.ring == ring && tok.accepted => Some(tok.clone()),
                _ => None,
            })
            .expect("a token to copy");
        self.push(LogEvent::Token(TokenEvent {
            t,
            node: n(node),
            accepted: false,
            ..last
        }))
    }

    /// Index of the only event matching `pred`.
    fn find(&self, pred: impl Fn(&LogEvent) -> bool) -> usize {
        let hits: Vec<usize> = (0..self.events.len())
            .filter(|&i| pred(&self.events[i]))
            .collect();
        assert_eq!(hits.len(), 1, "expected exactly one matching event");
        hits[0]
    }

    fn delivery(&self, node: u32, msg: MsgId) -> usize {
        self.find(|e| matches!(e, LogEvent::Deliver(d) if d.node == n(node) && d.msg == msg))
    }

    fn deliver_mut(&mut self, node: u32, msg: MsgId) -> &mut DeliverEvent {
        let i = self.delivery(node, msg);
        match &mut self.events[i] {
            LogEvent::Deliver(d) => d,
            _ => unreachable!(),
        }
    }

    fn token_mut(&mut self, ring: RingId, token_seq: u64) -> &mut TokenEvent {
        let i = self.find(
            |e| matches!(e, LogEvent::Token(t) if t.ring == ring && t.token_seq == token_seq && t.accepted),
        );
        match &mut self.events[i] {
            LogEvent::Token(t) => t,
            _ => unreachable!(),
        }
    }

    fn check(&self) -> Report {
        check(&self.events, &CheckParams::default())
    }
}

/// Three nodes on ring 1.4: five messages in five frames (two packed in frame 1, one safe),
/// a lost frame retransmitted, a rejected duplicate token. Then node 3 crashes: nodes 1 and 2
/// go through a transitional configuration to ring 1.8 and deliver one more message; node 3
/// restarts alone on ring 3.12.
fn valid() -> History {
    use DeliveryKind::{Agreed, Safe};
    let mut h = History::default();
    h.meta(3, true);
    for node in 1..=3 {
        h.config(
            100,
            node,
            ConfigKind::Regular,
            R1,
            &[1, 2, 3],
            &[],
            &[1, 2, 3],
        );
    }
    h.send(200, 1, 1, "a", Agreed)
        .send(200, 1, 2, "bb", Agreed)
        .send(200, 1, 3, "ccc", Agreed)
        .send(200, 2, 1, "dddd", Agreed)
        .send(200, 3, 1, "eeeee", Safe);
    // Frame 1 = [1:1, 1:2]; 1:3 stays queued.
    h.visit(300, 1, R1, 3, (1, 0, 1), (1, 0), &[], 0);
    h.deliver(305, 1, mid(1, 1), R1, 1)
        .deliver(306, 1, mid(1, 2), R1, 1);
    // Frame 2 = [2:1].
    h.visit(310, 2, R1, 3, (1, 0, 0), (2, 0), &[], 0);
    h.deliver(312, 2, mid(1, 1), R1, 1)
        .deliver(312, 2, mid(1, 2), R1, 1);
    // Node 2 sends 2:2 having delivered frame 1: causally after 1:1 and 1:2.
    h.send(313, 2, 2, "ffffff", Agreed);
    h.deliver(314, 2, mid(2, 1), R1, 2);
    h.deliver(315, 3, mid(1, 1), R1, 1)
        .deliver(316, 3, mid(1, 2), R1, 1);
    h.deliver(317, 1, mid(2, 1), R1, 2);
    // Frame 3 = [3:1] (safe); node 3 missed frame 2 and asks for it.
    h.visit(320, 3, R1, 3, (1, 0, 0), (1, 3), &[2], 0);
    h.stored(320, 3, R1, 3)
        .stored(322, 1, R1, 3)
        .stored(323, 2, R1, 3);
    h.reject_last(325, 3, R1);
    // Node 1 retransmits frame 2 and sends frame 4 = [1:3].
    h.visit(330, 1, R1, 3, (1, 1, 0), (1, 3), &[], 0);
    h.deliver(333, 3, mid(2, 1), R1, 2);
    // Frame 5 = [2:2].
    h.visit(340, 2, R1, 3, (1, 0, 0), (1, 3), &[], 0);
    h.visit(350, 3, R1, 3, (0, 0, 0), (5, 0), &[], 0);
    h.deliver(351, 3, mid(3, 1), R1, 3)
        .deliver(352, 3, mid(1, 3), R1, 4)
        .deliver(353, 3, mid(2, 2), R1, 5);
    h.visit(360, 1, R1, 3, (0, 0, 0), (5, 0), &[], 3);
    h.deliver(361, 1, mid(3, 1), R1, 3)
        .deliver(362, 1, mid(1, 3), R1, 4)
        .deliver(363, 1, mid(2, 2), R1, 5);
    h.visit(370, 2, R1, 3, (0, 0, 0), (5, 0), &[], 5);
    h.deliver(371, 2, mid(3, 1), R1, 3)
        .deliver(372, 2, mid(1, 3), R1, 4)
        .deliver(373, 2, mid(2, 2), R1, 5);

    // Node 3 crashes; 1 and 2 form ring 1.8.
    h.crash(1000, 3);
    h.send(1400, 1, 4, "ggggggg", Agreed);
    for node in 1..=2 {
        h.config(1500, node, ConfigKind::Transitional, R1, &[1, 2], &[3], &[]);
        h.regular(1501, node, R2, &[1, 2]);
    }
    h.visit(1600, 1, R2, 2, (1, 0, 0), (1, 0), &[], 0);
    h.deliver(1605, 1, mid(1, 4), R2, 1);
    h.visit(1610, 2, R2, 2, (0, 0, 0), (1, 0), &[], 1);
    h.deliver(1615, 2, mid(1, 4), R2, 1);

    // Node 3 restarts alone.
    h.restart(2000, 3);
    h.regular(2100, 3, R3, &[3]);
    h.send(2200, 3, 2, "h", Agreed);
    h.visit(2300, 3, R3, 1, (1, 0, 0), (1, 0), &[], 0);
    h.deliver(2301, 3, mid(3, 2), R3, 1);
    h
}

fn assert_only(report: &Report, property: Property) {
    assert_eq!(report.violated(), vec![property], "{report}");
    assert!(report.violations.iter().all(|v| v.property == property));
}

#[test]
fn valid_history_passes() {
    let h = valid();
    let report = h.check();
    assert!(report.is_ok(), "{report}");
    assert_eq!(report.sends, 8);
    assert_eq!(report.delivered, 21);
    assert_eq!(report.messages, 8);
    assert_eq!(report.nodes, 3);
    assert_eq!(report.rings, 3);
    assert_eq!(report.configs, 8);
    assert_eq!(report.regular_configs, 6);
    assert_eq!(report.transitional_configs, 2);
    assert_eq!(report.crashes, 1);
    assert_eq!(report.restarts, 1);
    assert!(report.params.drained);
}

#[test]
fn valid_history_passes_without_meta_line() {
    let mut h = valid();
    h.events.remove(0);
    let report = h.check();
    assert!(report.is_ok(), "{report}");
    assert!(!report.params.drained);
    assert_eq!(report.params.window_size, 50);
}

// 1. No creation.

#[test]
fn invented_message_is_creation() {
    let mut h = valid();
    // 2:9 was never sent; every node delivers it in frame 5 after 2:2.
    for node in [1u32, 2, 3] {
        let at = h.delivery(node, mid(2, 2));
        let LogEvent::Deliver(d) = h.events[at].clone() else {
            unreachable!()
        };
        let fake = DeliverEvent::new(
            d.t,
            d.node,
            mid(2, 9),
            R1,
            Seq(5),
            DeliveryKind::Agreed,
            b"x",
        );
        h.events.insert(at + 1, LogEvent::Deliver(fake));
    }
    let report = h.check();
    assert_only(&report, Property::NoCreation);
    assert_eq!(report.count(Property::NoCreation), 3);
    assert!(report.violations[0].message.contains("2:9"), "{report}");
}

#[test]
fn wrong_hash_is_creation() {
    let mut h = valid();
    h.deliver_mut(2, mid(2, 1)).hash = payload_hash(b"corrupted");
    let report = h.check();
    assert_only(&report, Property::NoCreation);
    let msg = &report.violations[0].message;
    assert!(
        msg.contains("node 2") && msg.contains("2:1") && msg.contains("ring 1.4 seq 2"),
        "{msg}"
    );
}

#[test]
fn wrong_length_is_creation() {
    let mut h = valid();
    h.deliver_mut(1, mid(3, 1)).len += 1;
    assert_only(&h.check(), Property::NoCreation);
}

#[test]
fn send_logged_by_another_node_is_creation() {
    let mut h = valid();
    let i = h.find(|e| matches!(e, LogEvent::Send(s) if s.msg == mid(2, 1)));
    if let LogEvent::Send(s) = &mut h.events[i] {
        s.node = n(1);
    }
    assert_only(&h.check(), Property::NoCreation);
}

// 2. No duplication.

#[test]
fn duplicated_delivery() {
    let mut h = valid();
    let at = h.delivery(2, mid(2, 1));
    let copy = h.events[at].clone();
    h.events.insert(at + 1, copy);
    let report = h.check();
    assert_only(&report, Property::NoDuplication);
    assert_eq!(report.count(Property::NoDuplication), 1);
}

// 3. Total order.

/// Swaps the positions of two events of one node, keeping the times where they were.
fn swap_keep_time(h: &mut History, a: usize, b: usize) {
    let (ta, tb) = (h.events[a].t(), h.events[b].t());
    h.events.swap(a, b);
    for (i, t) in [(a, ta), (b, tb)] {
        if let LogEvent::Deliver(d) = &mut h.events[i] {
            d.t = t.unwrap();
        }
    }
}

#[test]
fn reordered_deliveries_across_frames() {
    let mut h = valid();
    let (a, b) = (h.delivery(3, mid(2, 1)), h.delivery(3, mid(3, 1)));
    swap_keep_time(&mut h, a, b);
    let report = h.check();
    assert_only(&report, Property::TotalOrder);
    assert!(
        report.violations[0]
            .message
            .contains("node 3 delivered 2:1"),
        "{report}"
    );
}

#[test]
fn reordered_deliveries_within_one_frame() {
    let mut h = valid();
    let (a, b) = (h.delivery(2, mid(1, 1)), h.delivery(2, mid(1, 2)));
    swap_keep_time(&mut h, a, b);
    let report = h.check();
    assert_only(&report, Property::TotalOrder);
    assert!(
        report.violations[0].message.contains("different orders"),
        "{report}"
    );
}

#[test]
fn same_message_at_different_seq() {
    let mut h = valid();
    h.deliver_mut(2, mid(1, 3)).seq = Seq(3);
    // Node 2 now delivers 3:1 and 1:3 both at seq 3: same relative order problem does not
    // arise (only node 2 has both there), but 1:3's place disagrees with nodes 1 and 3.
    let report = h.check();
    assert_only(&report, Property::TotalOrder);
}

// 4. No gaps.

#[test]
fn gap_in_regular_configuration() {
    let mut h = valid();
    let at = h.delivery(3, mid(2, 1));
    h.events.remove(at);
    let report = h.check();
    assert_only(&report, Property::NoGaps);
    let msg = &report.violations[0].message;
    assert!(
        msg.contains("node 3") && msg.contains("without 2:1"),
        "{msg}"
    );
}

// 5. Self-delivery.

#[test]
fn missing_self_delivery() {
    let mut h = valid();
    // Node 3, alone on ring 3.12 after its restart, never delivers its 3:2. (Had node 2 missed
    // 2:2 of ring 1.4, which node 1 delivered, that would break failure atomicity too.)
    let at = h.delivery(3, mid(3, 2));
    h.events.remove(at);
    let report = h.check();
    assert_only(&report, Property::SelfDelivery);
    assert!(
        report.violations[0].message.contains("node 3 sent 3:2"),
        "{report}"
    );
    // Not enforced unless the run is drained.
    let lenient = check(
        &h.events,
        &CheckParams {
            drained: Some(false),
            ..CheckParams::default()
        },
    );
    assert!(lenient.is_ok(), "{lenient}");
}

#[test]
fn crashed_sender_need_not_self_deliver() {
    let mut h = valid();
    // Node 3's 3:2 on ring 3.12 is not delivered, but node 3 crashes afterwards.
    let at = h.delivery(3, mid(3, 2));
    h.events.remove(at);
    h.crash(3000, 3);
    assert!(h.check().is_ok());
}

// 6. Causal order.

/// Node 1 delivers 2:1 and then sends 1:1. Node 2 crashes; node 3, which missed frame 1,
/// delivers in its transitional configuration (where gaps are allowed) `with_gap` = only 1:1,
/// else 2:1 then 1:1.
fn causal_history(with_gap: bool) -> History {
    use DeliveryKind::Agreed;
    let mut h = History::default();
    h.meta(3, false);
    for node in 1..=3 {
        h.regular(100, node, R1, &[1, 2, 3]);
    }
    h.send(200, 2, 1, "from two", Agreed);
    h.deliver(300, 1, mid(2, 1), R1, 1)
        .deliver(301, 2, mid(2, 1), R1, 1);
    h.send(310, 1, 1, "from one, after 2:1", Agreed);
    h.deliver(400, 1, mid(1, 1), R1, 2)
        .deliver(401, 2, mid(1, 1), R1, 2);
    h.crash(500, 2);
    h.config(600, 3, ConfigKind::Transitional, R1, &[1, 3], &[2], &[]);
    if !with_gap {
        h.deliver(601, 3, mid(2, 1), R1, 1);
    }
    h.deliver(602, 3, mid(1, 1), R1, 2);
    h.regular(603, 3, R2, &[1, 3]);
    h
}

#[test]
fn causal_history_without_gap_passes() {
    let report = causal_history(false).check();
    assert!(report.is_ok(), "{report}");
}

#[test]
fn causal_violation_in_transitional_configuration() {
    let report = causal_history(true).check();
    assert_only(&report, Property::CausalOrder);
    let msg = &report.violations[0].message;
    assert!(
        msg.contains("node 3 delivered 1:1") && msg.contains("2:1"),
        "{msg}"
    );
}

// 7. Safe delivery.

#[test]
fn safe_delivery_before_a_member_stored_the_frame() {
    let mut h = valid();
    // Node 2 stores frame 3 only at t=362: after node 3 (t=351) and node 1 (t=361) delivered
    // 3:1 safe.
    let i = h.find(|e| matches!(e, LogEvent::Stored(s) if s.node == n(2)));
    let mut ev = h.events.remove(i);
    if let LogEvent::Stored(s) = &mut ev {
        s.t = 362;
    }
    let at = h.delivery(1, mid(3, 1));
    h.events.insert(at + 1, ev);
    let report = h.check();
    assert_only(&report, Property::SafeDelivery);
    assert_eq!(report.count(Property::SafeDelivery), 2);
    assert!(
        report.violations[0]
            .message
            .contains("member 2 stored the frame only at t=362")
    );
}

#[test]
fn safe_delivery_without_stored_event() {
    let mut h = valid();
    let i = h.find(|e| matches!(e, LogEvent::Stored(s) if s.node == n(1)));
    h.events.remove(i);
    let report = h.check();
    assert_only(&report, Property::SafeDelivery);
    assert_eq!(report.count(Property::SafeDelivery), 3);
}

#[test]
fn safe_message_not_delivered_at_a_live_member() {
    let mut h = valid();
    let at = h.delivery(1, mid(3, 1));
    h.events.remove(at);
    // Node 1 then misses frame 3 in its regular configuration: a gap too, and node 2, which
    // went through the same transitional configuration, delivered 3:1 (failure atomicity).
    let report = h.check();
    assert_eq!(
        report.violated(),
        vec![
            Property::NoGaps,
            Property::SafeDelivery,
            Property::FailureAtomicity
        ],
        "{report}"
    );
}

// 8. Messages belong to their configuration.

#[test]
fn delivery_before_its_configuration() {
    let mut h = valid();
    // Node 2 installs ring 1.8 only after delivering 1:4 of that ring.
    let cfg = h.find(|e| {
        matches!(e, LogEvent::Config(c) if c.node == n(2) && c.ring == R2 && c.kind == ConfigKind::Regular)
    });
    let mut ev = h.events.remove(cfg);
    if let LogEvent::Config(c) = &mut ev {
        c.t = 1620;
    }
    let at = h.delivery(2, mid(1, 4));
    h.events.insert(at + 1, ev);
    let report = h.check();
    assert_only(&report, Property::MessageInConfig);
    assert!(
        report.violations[0].message.contains("1:4 of ring 1.8"),
        "{report}"
    );
}

#[test]
fn delivery_without_configuration_after_restart() {
    let mut h = valid();
    // Node 3 restarts and delivers on ring 3.12 without ever installing it.
    let cfg = h.find(|e| matches!(e, LogEvent::Config(c) if c.ring == R3));
    h.events.remove(cfg);
    let report = h.check();
    assert_only(&report, Property::MessageInConfig);
    assert!(
        report.violations[0]
            .message
            .contains("outside any configuration"),
        "{report}"
    );
}

// 9. Configuration events.

#[test]
fn disagreeing_member_lists() {
    let mut h = valid();
    let i = h.find(|e| matches!(e, LogEvent::Config(c) if c.node == n(2) && c.ring == R1 && c.kind == ConfigKind::Regular));
    if let LogEvent::Config(c) = &mut h.events[i] {
        c.members = ids(&[1, 2]);
        c.joined = ids(&[1, 2]);
    }
    let report = h.check();
    assert_only(&report, Property::RingIdUnique);
    assert!(
        report.violations[0]
            .message
            .contains("installed ring 1.4 with members [1,2]"),
        "{report}"
    );
}

#[test]
fn node_missing_from_its_own_configuration() {
    let mut h = valid();
    // Both nodes agree on the transitional members [2], which leave out node 1.
    for node in [1, 2] {
        let i = h.find(|e| matches!(e, LogEvent::Config(c) if c.node == n(node) && c.kind == ConfigKind::Transitional));
        if let LogEvent::Config(c) = &mut h.events[i] {
            c.members = ids(&[2]);
        }
    }
    let report = h.check();
    assert_only(&report, Property::ConfigEvents);
    assert_eq!(report.count(Property::ConfigEvents), 1);
    assert!(
        report.violations[0]
            .message
            .contains("node 1 is not in its own transitional"),
        "{report}"
    );
}

#[test]
fn unsorted_members_and_ring_seq_going_back() {
    let mut h = valid();
    let i = h.find(|e| matches!(e, LogEvent::Config(c) if c.node == n(3) && c.ring == R3));
    if let LogEvent::Config(c) = &mut h.events[i] {
        c.ring = ring(3, 2);
    }
    let j = h.find(|e| matches!(e, LogEvent::Deliver(d) if d.node == n(3) && d.ring == R3));
    if let LogEvent::Deliver(d) = &mut h.events[j] {
        d.ring = ring(3, 2);
    }
    for e in &mut h.events {
        if let LogEvent::Token(t) = e
            && t.ring == R3
        {
            t.ring = ring(3, 2);
        }
    }
    let report = h.check();
    assert_only(&report, Property::RingIdUnique);
    assert!(
        report.violations[0]
            .message
            .contains("ring seq did not increase"),
        "{report}"
    );

    let mut h = valid();
    for node in [1, 2] {
        let i = h.find(|e| matches!(e, LogEvent::Config(c) if c.node == n(node) && c.ring == R2));
        if let LogEvent::Config(c) = &mut h.events[i] {
            c.members = ids(&[2, 1]);
        }
    }
    let report = h.check();
    assert_only(&report, Property::ConfigEvents);
    assert_eq!(report.count(Property::ConfigEvents), 2);
    assert!(
        report.violations[0]
            .message
            .contains("members [2,1] not ascending"),
        "{report}"
    );
}

#[test]
fn transitional_agreement_and_subset() {
    let mut h = valid();
    let i = h.find(|e| matches!(e, LogEvent::Config(c) if c.node == n(2) && c.kind == ConfigKind::Transitional));
    if let LogEvent::Config(c) = &mut h.events[i] {
        c.members = ids(&[2]);
        c.left = ids(&[1, 3]);
    }
    let report = h.check();
    assert_only(&report, Property::RingIdUnique);
    assert!(
        report.violations[0]
            .message
            .contains("transitional members [2]"),
        "{report}"
    );
}

// 10. Token invariants.

#[test]
fn token_seq_going_backwards() {
    let mut h = valid();
    h.token_mut(R1, 4).token_seq = 1;
    let report = h.check();
    assert_only(&report, Property::TokenInvariants);
    assert!(
        report.violations[0]
            .message
            .contains("accepted token_seq 1 of ring 1.4 after accepting 1"),
        "{report}"
    );
}

#[test]
fn rejected_token_newer_than_last_accepted() {
    let mut h = valid();
    let i = h.find(|e| matches!(e, LogEvent::Token(t) if !t.accepted));
    if let LogEvent::Token(t) = &mut h.events[i] {
        t.token_seq = 9;
    }
    assert_only(&h.check(), Property::TokenInvariants);
}

#[test]
fn fcc_off_by_one() {
    let mut h = valid();
    h.token_mut(R1, 5).fcc += 1;
    let report = h.check();
    assert_only(&report, Property::TokenInvariants);
    assert_eq!(report.count(Property::TokenInvariants), 1);
    assert!(
        report.violations[0]
            .message
            .contains("fcc 5 but the last 3 visits sent 4"),
        "{report}"
    );
}

#[test]
fn backlog_off_by_one() {
    let mut h = valid();
    h.token_mut(R1, 2).backlog -= 1;
    assert_only(&h.check(), Property::TokenInvariants);
}

#[test]
fn rtr_duplicate_and_out_of_range() {
    let mut h = valid();
    h.token_mut(R1, 3).rtr = vec![Seq(2), Seq(2)];
    let report = h.check();
    assert_only(&report, Property::TokenInvariants);
    assert!(
        report.violations[0]
            .message
            .contains("rtr entry 2 repeated"),
        "{report}"
    );

    let mut h = valid();
    h.token_mut(R1, 3).rtr = vec![Seq(4)];
    let report = h.check();
    assert_only(&report, Property::TokenInvariants);
    assert!(
        report.violations[0]
            .message
            .contains("rtr entry 4 outside (0, seq 3]"),
        "{report}"
    );

    let mut h = valid();
    h.token_mut(R1, 3).rtr = vec![Seq(0)];
    assert_only(&h.check(), Property::TokenInvariants);
}

#[test]
fn seq_going_back_and_aru_above_seq() {
    let mut h = valid();
    h.token_mut(R1, 6).seq = Seq(4);
    let report = h.check();
    assert_only(&report, Property::TokenInvariants);
    assert!(
        report
            .violations
            .iter()
            .any(|v| v.message.contains("went back")),
        "{report}"
    );

    let mut h = valid();
    h.token_mut(R1, 1).aru = Seq(2);
    assert_only(&h.check(), Property::TokenInvariants);
}

#[test]
fn safe_above_every_aru_or_going_back() {
    let mut h = valid();
    h.token_mut(R1, 4).safe = Seq(3); // highest aru so far is 2
    let report = h.check();
    assert_only(&report, Property::TokenInvariants);
    assert!(
        report.violations[0].message.contains("above every aru"),
        "{report}"
    );

    let mut h = valid();
    h.token_mut(R1, 8).safe = Seq(2);
    assert_only(&h.check(), Property::TokenInvariants);
}

#[test]
fn max_messages_and_window_from_params() {
    let h = valid();
    // Visit 4 sent 2 frames; visits 4 and 5 have fcc 4.
    let params = CheckParams {
        max_messages: Some(1),
        window_size: Some(3),
        ..CheckParams::default()
    };
    let report = check(&h.events, &params);
    assert_only(&report, Property::TokenInvariants);
    assert_eq!(report.count(Property::TokenInvariants), 3, "{report}");
}

// 11. Well-formed log.

#[test]
fn time_going_back_and_events_while_crashed() {
    let mut h = valid();
    h.deliver_mut(1, mid(2, 1)).t = 1;
    assert_only(&h.check(), Property::WellFormedLog);

    let mut h = valid();
    let i = h.find(|e| matches!(e, LogEvent::Restart { .. }));
    h.events.remove(i);
    let report = h.check();
    // Node 3's events after its crash: ring 3.12, a send, a token, a delivery.
    assert_only(&report, Property::WellFormedLog);
    assert_eq!(report.count(Property::WellFormedLog), 4);
}

// 12–16. Membership changes.

const RA: RingId = R1; // 1.4: [1,2,3]
const RB: RingId = R2; // 1.8: [1,2] after node 3 crashed
const RC: RingId = RingId {
    rep: NodeId(3),
    seq: 9,
}; // 3.9: [3], node 3 after its restart
const RD: RingId = RingId {
    rep: NodeId(1),
    seq: 12,
}; // 1.12: [1,2,3], the merge

/// A membership change and a merge, without tokens. Ring 1.4 = [1,2,3]: frames 1–2 (1:1, 2:1)
/// reach everyone, frame 3 (3:1) only node 3, frames 4–5 (1:2, then 2:2 safe) only nodes 1 and
/// 2, frame 6 (3:2) only nodes 1 and 2 as well. Node 3 crashes. Nodes 1 and 2 go through
/// transitional(1.4, [1,2]): after the gap at 3:1 they deliver 1:2 and 2:2 (senders in the
/// transitional set) but not 3:2. They install 1.8 = [1,2] and deliver 1:3, 2:3, 1:4. Node 3
/// restarts into 3.9 = [3] and delivers 3:3; then all three merge into 1.12 through the
/// transitional configurations of their own old rings and deliver 2:4.
fn membership() -> History {
    use DeliveryKind::{Agreed, Safe};
    let mut h = History::default();
    h.meta(3, true);
    for node in 1..=3 {
        h.config(
            100,
            node,
            ConfigKind::Regular,
            RA,
            &[1, 2, 3],
            &[],
            &[1, 2, 3],
        );
    }
    h.send(200, 1, 1, "a", Agreed)
        .send(200, 2, 1, "bb", Agreed)
        .send(200, 3, 1, "ccc", Agreed)
        .send(200, 3, 2, "dddd", Agreed);
    for node in 1..=3 {
        h.deliver(300, node, mid(1, 1), RA, 1);
    }
    for node in 1..=3 {
        h.deliver(310, node, mid(2, 1), RA, 2);
    }
    h.deliver(320, 3, mid(3, 1), RA, 3);
    h.send(330, 1, 2, "eeeee", Agreed)
        .send(330, 2, 2, "ffffff", Safe);
    h.stored(340, 1, RA, 5).stored(341, 2, RA, 5);
    h.crash(400, 3);
    for node in 1..=2 {
        h.config(1000, node, ConfigKind::Transitional, RA, &[1, 2], &[3], &[]);
        h.deliver(1001, node, mid(1, 2), RA, 4)
            .deliver(1002, node, mid(2, 2), RA, 5);
        h.config(1003, node, ConfigKind::Regular, RB, &[1, 2], &[3], &[]);
    }
    h.send(1100, 1, 3, "g", Agreed)
        .send(1100, 2, 3, "hh", Agreed);
    for node in 1..=2 {
        h.deliver(1200, node, mid(1, 3), RB, 1)
            .deliver(1210, node, mid(2, 3), RB, 2);
    }
    h.send(1300, 1, 4, "iii", Agreed);
    for node in 1..=2 {
        h.deliver(1400, node, mid(1, 4), RB, 3);
    }
    h.restart(2000, 3);
    h.regular(2100, 3, RC, &[3]);
    h.send(2200, 3, 3, "jjjj", Agreed);
    h.deliver(2300, 3, mid(3, 3), RC, 1);
    for node in 1..=2 {
        h.config(3000, node, ConfigKind::Transitional, RB, &[1, 2], &[], &[]);
    }
    h.config(3000, 3, ConfigKind::Transitional, RC, &[3], &[], &[]);
    for (node, joined) in [(1, &[3][..]), (2, &[3]), (3, &[1, 2])] {
        h.config(3001, node, ConfigKind::Regular, RD, &[1, 2, 3], &[], joined);
    }
    h.send(3100, 2, 4, "kkkkk", Agreed);
    for node in 1..=3 {
        h.deliver(3200, node, mid(2, 4), RD, 1);
    }
    h
}

/// `membership()` checked with a last fault (node 3's restart at t=2000) and a bound.
fn check_converged(h: &History, bound: u64) -> Report {
    check(
        &h.events,
        &CheckParams {
            last_fault_ns: Some(2000),
            converge_bound_ns: Some(bound),
            ..CheckParams::default()
        },
    )
}

/// Renames ring `from` to `to` in node `node`'s configurations and deliveries.
fn rename_ring(h: &mut History, node: u32, from: RingId, to: RingId) {
    for e in &mut h.events {
        match e {
            LogEvent::Config(c) if c.node == n(node) && c.ring == from => c.ring = to,
            LogEvent::Deliver(d) if d.node == n(node) && d.ring == from => d.ring = to,
            _ => {}
        }
    }
}

fn config_at(h: &History, node: u32, kind: ConfigKind, ring: RingId) -> usize {
    h.find(|e| matches!(e, LogEvent::Config(c) if c.node == n(node) && c.kind == kind && c.ring == ring))
}

#[test]
fn membership_history_passes() {
    let h = membership();
    let report = check_converged(&h, 1500);
    assert!(report.is_ok(), "{report}");
    assert!(report.params.checks_convergence());
    assert_eq!(report.sends, 11);
    assert_eq!(report.delivered, 21);
    assert_eq!(report.messages, 10);
    assert_eq!(report.rings, 4);
    assert_eq!(report.configs, 14);
    assert_eq!(report.regular_configs, 9);
    assert_eq!(report.transitional_configs, 5);
    assert!(
        report
            .to_string()
            .contains("14 configs (9 regular, 5 transitional)"),
        "{report}"
    );
    let plain = h.check();
    assert!(plain.is_ok(), "{plain}");
    assert!(!plain.params.checks_convergence());
}

// 12. Ring-id uniqueness and agreement.

#[test]
fn ring_id_reused_with_other_members() {
    let mut h = membership();
    // After its restart node 3 names its one-node ring 1.8, the id of nodes 1 and 2's ring
    // [1,2] (and delivers nothing in it).
    rename_ring(&mut h, 3, RC, RB);
    let send = h.find(|e| matches!(e, LogEvent::Send(s) if s.msg == mid(3, 3)));
    h.events.remove(send);
    let at = h.delivery(3, mid(3, 3));
    h.events.remove(at);
    let report = h.check();
    assert_only(&report, Property::RingIdUnique);
    let msg = &report.violations[0].message;
    assert!(
        msg.contains("node 3 installed ring 1.8 with members [3]")
            && msg.contains("one ring id names two memberships"),
        "{report}"
    );
    // The transitional configurations from "1.8" to 1.12 then disagree too.
    assert!(
        report
            .violations
            .iter()
            .any(|v| v.message.contains("went from ring 1.8 to 1.12")),
        "{report}"
    );
}

#[test]
fn ring_seq_going_down_after_restart() {
    let mut h = membership();
    rename_ring(&mut h, 3, RC, ring(3, 3));
    let report = h.check();
    assert_only(&report, Property::RingIdUnique);
    assert_eq!(report.count(Property::RingIdUnique), 1);
    let v = &report.violations[0];
    assert_eq!(
        v.event,
        Some(config_at(&h, 3, ConfigKind::Regular, ring(3, 3)))
    );
    assert!(
        v.message.contains(
            "node 3 installed ring 3.3 after ring 1.4 (across its restart at t=2000): ring seq did not increase"
        ),
        "{report}"
    );
}

// 13. Configuration sequence.

#[test]
fn transitional_member_not_in_the_ending_ring() {
    let mut h = membership();
    let i = config_at(&h, 3, ConfigKind::Transitional, RC);
    if let LogEvent::Config(c) = &mut h.events[i] {
        c.members = ids(&[2, 3]);
    }
    let report = h.check();
    assert_only(&report, Property::ConfigSequence);
    assert_eq!(report.violations[0].event, Some(i));
    assert!(
        report.violations[0].message.contains(
            "node 3: transitional members [2,3] of ring 3.9 are not all members of that ring [3]"
        ),
        "{report}"
    );
}

#[test]
fn transitional_followed_by_another_transitional() {
    let mut h = membership();
    let i = config_at(&h, 1, ConfigKind::Transitional, RB);
    let copy = h.events[i].clone();
    h.events.insert(i + 1, copy);
    let report = h.check();
    assert_only(&report, Property::ConfigSequence);
    assert_eq!(report.violations[0].event, Some(i + 1));
    assert!(
        report.violations[0]
            .message
            .contains("node 1: second transitional configuration (ring 1.8)"),
        "{report}"
    );
}

#[test]
fn transitional_without_regular_after_restart() {
    let mut h = membership();
    // Node 3 restarts straight into a transitional configuration.
    let i = config_at(&h, 3, ConfigKind::Regular, RC);
    if let LogEvent::Config(c) = &mut h.events[i] {
        c.kind = ConfigKind::Transitional;
    }
    let report = h.check();
    // Then its transitional configuration of 3.9 before the merge is a second one in a row.
    assert_only(&report, Property::ConfigSequence);
    assert_eq!(report.count(Property::ConfigSequence), 2);
    assert!(
        report.violations.iter().any(|v| v
            .message
            .contains("without a regular configuration before it")),
        "{report}"
    );
}

// 8. Messages belong to their configuration, across a membership change.

#[test]
fn new_ring_message_before_its_regular_configuration() {
    let mut h = membership();
    // Node 2 delivers 1:3 of ring 1.8 after the transitional configuration ending 1.4 but
    // before installing 1.8.
    let cfg = config_at(&h, 2, ConfigKind::Regular, RB);
    let mut ev = h.events.remove(cfg);
    if let LogEvent::Config(c) = &mut ev {
        c.t = 1200;
    }
    let at = h.delivery(2, mid(1, 3));
    h.events.insert(at + 1, ev);
    let report = h.check();
    assert_only(&report, Property::MessageInConfig);
    assert_eq!(report.count(Property::MessageInConfig), 1);
    assert!(
        report.violations[0].message.contains(
            "node 2 delivered 1:3 of ring 1.8 (seq 1) at t=1200 after the transitional configuration \
             of ring 1.4 (the ending ring), before its regular configuration of that ring"
        ),
        "{report}"
    );
}

// 14. Transitional-set semantics.

#[test]
fn after_gap_message_from_a_non_transitional_sender() {
    let mut h = membership();
    // Nodes 1 and 2 also deliver 3:2 (frame 6) after the gap at 3:1, though node 3 is not in
    // their transitional configuration.
    for node in [1, 2] {
        let at = h.delivery(node, mid(2, 2));
        let (payload, kind) = h.sent[&mid(3, 2)].clone();
        let ev = DeliverEvent::new(1002, n(node), mid(3, 2), RA, Seq(6), kind, &payload);
        h.events.insert(at + 1, LogEvent::Deliver(ev));
    }
    let report = h.check();
    assert_only(&report, Property::TransitionalDelivery);
    assert_eq!(report.count(Property::TransitionalDelivery), 2);
    assert!(
        report.violations[0].message.contains(
            "node 1 delivered 3:2 (ring 1.4 seq 6) after a gap (it skipped 3:1, seq 3), but its \
             sender 3 is not in its transitional configuration [1,2]"
        ),
        "{report}"
    );
}

#[test]
fn transitional_seq_going_back() {
    let mut h = membership();
    for node in [1, 2] {
        let (a, b) = (h.delivery(node, mid(1, 2)), h.delivery(node, mid(2, 2)));
        swap_keep_time(&mut h, a, b);
    }
    let report = h.check();
    assert_only(&report, Property::TransitionalDelivery);
    assert!(
        report.violations[0]
            .message
            .contains("node 1 delivered 1:2 (ring 1.4 seq 4) in its transitional configuration after 2:2 (seq 5)"),
        "{report}"
    );
}

// 15. Failure atomicity.

#[test]
fn same_transitional_configuration_different_messages() {
    let mut h = membership();
    // Node 2 skips 1:2 (a gap it may have, but node 1 delivered it in the same transitional
    // configuration).
    let at = h.delivery(2, mid(1, 2));
    h.events.remove(at);
    let report = h.check();
    assert_only(&report, Property::FailureAtomicity);
    assert_eq!(report.count(Property::FailureAtomicity), 1);
    let v = &report.violations[0];
    assert_eq!(v.event, Some(config_at(&h, 2, ConfigKind::Regular, RB)));
    assert!(
        v.message.contains(
            "node 2 installed its next ring without delivering 1:2 (ring 1.4 seq 4), which node 1 \
             delivered; both went from ring 1.4 through transitional configuration [1,2]"
        ),
        "{report}"
    );
}

#[test]
fn crashed_node_is_not_held_to_failure_atomicity() {
    let mut h = membership();
    // Node 2 crashes right after its transitional configuration ending 1.4, before delivering
    // 1:2 and 2:2 in it, and stays down; it never sends 2:3 or 2:4.
    let trans = config_at(&h, 2, ConfigKind::Transitional, RA);
    let gone = |e: &LogEvent| match e {
        LogEvent::Send(s) => s.msg == mid(2, 3) || s.msg == mid(2, 4),
        LogEvent::Deliver(d) => d.msg == mid(2, 3) || d.msg == mid(2, 4),
        _ => false,
    };
    h.events = h
        .events
        .iter()
        .enumerate()
        .filter(|&(i, e)| !(gone(e) || (i > trans && e.node() == Some(n(2)))))
        .map(|(_, e)| e.clone())
        .collect();
    h.events.insert(
        trans + 1,
        LogEvent::Crash {
            t: 1000,
            node: n(2),
        },
    );
    let report = h.check();
    assert!(report.is_ok(), "{report}");
}

// 16. Convergence.

#[test]
fn not_converged_by_the_bound() {
    let h = membership();
    // The merge is installed at t=3001, later than 2000 + 500.
    let report = check_converged(&h, 500);
    assert_only(&report, Property::Convergence);
    assert_eq!(report.count(Property::Convergence), 3);
    assert!(
        report.violations[0].message.contains(
            "node 1 installed its last ring 1.12 at t=3001, after the bound t=2500 (last fault t=2000 + 500 ns)"
        ),
        "{report}"
    );
    // Not checked unless drained.
    let lenient = check(
        &h.events,
        &CheckParams {
            drained: Some(false),
            last_fault_ns: Some(2000),
            converge_bound_ns: Some(500),
            ..CheckParams::default()
        },
    );
    assert!(lenient.is_ok(), "{lenient}");
}

#[test]
fn alive_nodes_in_different_rings() {
    let mut h = membership();
    // Node 3 never merges: it stays alone in 3.9, while 1.12 names it as a member.
    h.events.retain(|e| {
        !matches!(e, LogEvent::Config(c) if c.node == n(3) && c.t >= 3000)
            && !matches!(e, LogEvent::Deliver(d) if d.node == n(3) && d.ring == RD)
    });
    let report = check_converged(&h, 1500);
    assert_only(&report, Property::Convergence);
    assert!(
        report.violations[0].message.contains(
            "node 3 ended in ring 3.9 [3], but node 1 ended in ring 1.12 [1,2,3]: the alive nodes did not converge"
        ),
        "{report}"
    );

    // Nodes 1 and 2 end in [1,2] although node 3 is alive.
    let mut h = membership();
    h.events.retain(|e| {
        !matches!(e, LogEvent::Config(c) if c.t >= 3000)
            && !matches!(e, LogEvent::Deliver(d) if d.ring == RD)
            && !matches!(e, LogEvent::Send(s) if s.msg == mid(2, 4))
    });
    let report = check_converged(&h, 1500);
    assert_only(&report, Property::Convergence);
    assert!(
        report.violations.iter().any(|v| v.message.contains(
            "the final ring 1.8 has members [1,2], but the nodes alive at the end are [1,2,3]"
        )),
        "{report}"
    );

    // A node alive at the end in the middle of a change.
    let mut h = membership();
    let i = config_at(&h, 3, ConfigKind::Regular, RD);
    h.events.remove(i);
    let d = h.delivery(3, mid(2, 4));
    h.events.remove(d);
    let report = check_converged(&h, 1500);
    assert!(
        report
            .violations
            .iter()
            .any(|v| v.property == Property::Convergence
                && v.message.contains("never installed the next ring")),
        "{report}"
    );
}

// Report size.

#[test]
fn violations_are_bounded_per_property() {
    let mut h = valid();
    for e in &mut h.events {
        if let LogEvent::Deliver(d) = e {
            d.hash = payload_hash(b"zap");
        }
    }
    let report = check(
        &h.events,
        &CheckParams {
            max_violations_per_property: 5,
            ..CheckParams::default()
        },
    );
    assert_eq!(report.count(Property::NoCreation), 21);
    assert_eq!(report.violations.len(), 5);
    assert!(report.to_string().contains("(16 more not shown)"));
}

// The log format.

fn roundtrip(event: LogEvent, line: &str) {
    let text = serde_json::to_string(&event).unwrap();
    assert_eq!(text, line);
    let back: LogEvent = serde_json::from_str(line).unwrap();
    assert_eq!(back, event);
    let mut log = EventLog::new(Vec::new());
    log.write(&event).unwrap();
    assert_eq!(log.lines(), 1);
    assert_eq!(
        String::from_utf8(log.into_inner()).unwrap(),
        format!("{line}\n")
    );
}

#[test]
fn every_event_has_the_documented_shape() {
    roundtrip(
        LogEvent::Meta(Meta {
            nodes: Some(3),
            window_size: Some(50),
            max_messages: Some(17),
            max_rtr: Some(30),
            drained: Some(true),
        }),
        r#"{"ev":"meta","nodes":3,"window_size":50,"max_messages":17,"max_rtr":30,"drained":true}"#,
    );
    roundtrip(LogEvent::Meta(Meta::default()), r#"{"ev":"meta"}"#);
    roundtrip(
        LogEvent::Send(SendEvent::new(
            10,
            n(2),
            mid(2, 7),
            DeliveryKind::Safe,
            1,
            b"abc",
        )),
        r#"{"t":10,"node":2,"ev":"send","msg":"2:7","len":3,"hash":"ba7816bf8f01cfea","kind":"safe","prio":1}"#,
    );
    roundtrip(
        LogEvent::Deliver(DeliverEvent::new(
            11,
            n(3),
            mid(2, 7),
            ring(1, 4),
            Seq(9),
            DeliveryKind::Agreed,
            b"abc",
        )),
        r#"{"t":11,"node":3,"ev":"deliver","msg":"2:7","ring":"1.4","seq":9,"kind":"agreed","hash":"ba7816bf8f01cfea","len":3}"#,
    );
    roundtrip(
        LogEvent::Config(ConfigEvent {
            t: 12,
            node: n(1),
            kind: ConfigKind::Regular,
            ring: ring(1, 8),
            members: ids(&[1, 2, 4]),
            left: ids(&[3]),
            joined: ids(&[4]),
            failed: vec![],
        }),
        r#"{"t":12,"node":1,"ev":"config","kind":"regular","ring":"1.8","members":[1,2,4],"left":[3],"joined":[4]}"#,
    );
    roundtrip(
        LogEvent::Config(ConfigEvent {
            t: 13,
            node: n(1),
            kind: ConfigKind::Transitional,
            ring: ring(1, 4),
            members: ids(&[1, 2]),
            left: vec![],
            joined: vec![],
            failed: vec![],
        }),
        r#"{"t":13,"node":1,"ev":"config","kind":"transitional","ring":"1.4","members":[1,2]}"#,
    );
    roundtrip(
        LogEvent::Crash { t: 14, node: n(3) },
        r#"{"t":14,"node":3,"ev":"crash"}"#,
    );
    roundtrip(
        LogEvent::Restart { t: 15, node: n(3) },
        r#"{"t":15,"node":3,"ev":"restart"}"#,
    );
    roundtrip(
        LogEvent::Stored(StoredEvent {
            t: 16,
            node: n(2),
            ring: ring(1, 4),
            seq: Seq(9),
        }),
        r#"{"t":16,"node":2,"ev":"stored","ring":"1.4","seq":9}"#,
    );
    roundtrip(
        LogEvent::Token(TokenEvent {
            t: 17,
            node: n(2),
            ring: ring(1, 4),
            token_seq: 42,
            accepted: true,
            seq: Seq(9),
            aru: Seq(7),
            aru_addr: n(3),
            fcc: 5,
            backlog: 6,
            rtr: vec![Seq(8), Seq(9)],
            sent_new: 2,
            sent_retrans: 1,
            my_backlog: 4,
            safe: Seq(6),
        }),
        r#"{"t":17,"node":2,"ev":"token","ring":"1.4","token_seq":42,"accepted":true,"seq":9,"aru":7,"aru_addr":3,"fcc":5,"backlog":6,"rtr":[8,9],"sent_new":2,"sent_retrans":1,"my_backlog":4,"safe":6}"#,
    );
}

#[test]
fn field_order_does_not_matter_when_reading() {
    let line = r#"{"ev":"stored","seq":9,"ring":"1.4","node":2,"t":16,"extra":"ignored"}"#;
    let ev: LogEvent = serde_json::from_str(line).unwrap();
    assert_eq!(
        ev,
        LogEvent::Stored(StoredEvent {
            t: 16,
            node: n(2),
            ring: ring(1, 4),
            seq: Seq(9)
        })
    );
}

#[test]
fn read_log_reports_the_bad_line() {
    let text = "{\"t\":1,\"node\":1,\"ev\":\"crash\"}\n\n{\"t\":2,\"node\":1,\"ev\":\"restart\"}\n{\"t\":3,\"node\":1,\"ev\":\"deliver\",\"msg\":\"1-1\"}\n";
    let err = read_log(text.as_bytes()).unwrap_err();
    match &err {
        LogError::Parse { line, .. } => assert_eq!(*line, 4),
        other => panic!("unexpected {other:?}"),
    }
    assert!(err.to_string().starts_with("line 4:"), "{err}");
    for (bad, what) in [
        (
            r#"{"t":1,"node":1,"ev":"teleport"}"#,
            "unknown event `teleport`",
        ),
        (r#"{"t":1,"ev":"crash"}"#, "without field `node`"),
        (
            r#"{"t":1,"node":1,"ev":"stored","ring":"1:4","seq":1}"#,
            "not REP.SEQ",
        ),
        (
            r#"{"t":1,"node":1,"ev":"send","msg":"1:1","len":1,"hash":"xyz","kind":"agreed","prio":0}"#,
            "not 16 hex digits",
        ),
    ] {
        let err = read_log(bad.as_bytes()).unwrap_err().to_string();
        assert!(err.contains(what), "{err}");
    }
}

#[test]
fn written_log_reads_back_and_checks_from_file() {
    let h = valid();
    let path = std::env::temp_dir().join(format!("totem-sim-checker-{}.jsonl", std::process::id()));
    {
        let file = std::fs::File::create(&path).unwrap();
        let mut log = EventLog::new(std::io::BufWriter::new(file));
        for e in &h.events {
            log.write(e).unwrap();
        }
        log.flush().unwrap();
    }
    let text = std::fs::read(&path).unwrap();
    assert_eq!(read_log(&text[..]).unwrap(), h.events);
    let report = check_file(&path).unwrap();
    assert!(report.is_ok(), "{report}");

    // A broken copy: violations carry line numbers.
    let mut broken = valid();
    broken.deliver_mut(2, mid(2, 1)).hash = payload_hash(b"corrupted");
    let at = broken.delivery(2, mid(2, 1));
    let mut log = EventLog::new(Vec::new());
    for e in &broken.events {
        log.write(e).unwrap();
    }
    std::fs::write(&path, log.into_inner()).unwrap();
    let report = check_file(&path).unwrap();
    std::fs::remove_file(&path).ok();
    assert_eq!(report.violations[0].line, Some(at + 1));
    assert!(
        report.violations[0]
            .to_string()
            .starts_with(&format!("[1. no-creation] line {}:", at + 1))
    );
}

/// A long valid log (about 120 000 events) writes, reads back and checks clean: the index
/// structures behave at scale. (Speed is not asserted here; it is a benchmark's job.)
#[test]
fn long_log_round_trips_and_checks_clean() {
    let nodes = 4u32;
    let members: Vec<u32> = (1..=nodes).collect();
    let mut events = Vec::new();
    for node in 1..=nodes {
        events.push(LogEvent::Config(ConfigEvent {
            t: 0,
            node: n(node),
            kind: ConfigKind::Regular,
            ring: R1,
            members: ids(&members),
            left: vec![],
            joined: vec![],
            failed: vec![],
        }));
    }
    let frames = 20_000u64;
    let mut counters = vec![0u64; nodes as usize + 1];
    for seq in 1..=frames {
        let sender = (seq % u64::from(nodes)) as u32 + 1;
        counters[sender as usize] += 1;
        let msg = mid(sender, counters[sender as usize]);
        let payload = seq.to_le_bytes();
        events.push(LogEvent::Send(SendEvent::new(
            seq * 10,
            n(sender),
            msg,
            DeliveryKind::Agreed,
            2,
            &payload,
        )));
        for node in 1..=nodes {
            events.push(LogEvent::Deliver(DeliverEvent::new(
                seq * 10 + 1,
                n(node),
                msg,
                R1,
                Seq(seq),
                DeliveryKind::Agreed,
                &payload,
            )));
        }
        events.push(LogEvent::Token(TokenEvent {
            t: seq * 10 + 2,
            node: n(sender),
            ring: R1,
            token_seq: seq,
            accepted: true,
            seq: Seq(seq),
            aru: Seq(seq),
            aru_addr: NodeId::NONE,
            fcc: seq.min(u64::from(nodes)) as u32,
            backlog: 0,
            rtr: vec![],
            sent_new: 1,
            sent_retrans: 0,
            my_backlog: 0,
            safe: Seq(seq.saturating_sub(1)),
        }));
    }
    let mut log = EventLog::new(Vec::with_capacity(events.len() * 150));
    for e in &events {
        log.write(e).unwrap();
    }
    let text = log.into_inner();
    let back = read_log(&text[..]).unwrap();
    assert_eq!(back, events);
    let report = check(&back, &CheckParams::default());
    assert_eq!(report.delivered, frames * u64::from(nodes));
    assert!(report.is_ok(), "{report}");
}

/// Ring 1.4 = [1,2,3]; 1:1 (safe) is stored everywhere. Node 3 crashes. Node 1 installs 1.8 =
/// [1,2] through transitional(1.4, [1,2]) and delivers 1:1 there. Node 2 delivers
/// `node2_trans` as its transitional configuration and then its own next ring, without 1:1.
fn safe_in_transitional(node2_trans: &[u32], node2_next: RingId, node2_members: &[u32]) -> History {
    let mut h = History::default();
    h.meta(3, true);
    for node in 1..=3 {
        h.config(
            100,
            node,
            ConfigKind::Regular,
            RA,
            &[1, 2, 3],
            &[],
            &[1, 2, 3],
        );
    }
    h.send(200, 1, 1, "a", DeliveryKind::Safe);
    h.stored(210, 1, RA, 1)
        .stored(211, 2, RA, 1)
        .stored(212, 3, RA, 1);
    h.crash(300, 3);
    h.config(1000, 1, ConfigKind::Transitional, RA, &[1, 2], &[3], &[]);
    h.deliver(1001, 1, mid(1, 1), RA, 1);
    h.config(1002, 1, ConfigKind::Regular, RB, &[1, 2], &[3], &[]);
    h.config(1000, 2, ConfigKind::Transitional, RA, node2_trans, &[], &[]);
    h.config(
        1002,
        2,
        ConfigKind::Regular,
        node2_next,
        node2_members,
        &[],
        &[],
    );
    h
}

#[test]
fn safe_delivery_in_a_transitional_configuration_is_owed_by_all_its_members() {
    // Node 2 delivered the same transitional configuration [1,2]: it owed 1:1.
    let same = safe_in_transitional(&[1, 2], RB, &[1, 2]);
    let report = same.check();
    assert!(report.count(Property::SafeDelivery) >= 1, "{report}");
    // Node 2 abandoned the recovery of 1.8 and went on alone, never delivering the
    // transitional configuration [1,2] in which node 1 delivered 1:1: it still owed it (the
    // protocol installs an abandoned ring late when it learns another member installed it).
    let alone = RingId {
        seq: 9,
        rep: NodeId(2),
    };
    let abandoned = safe_in_transitional(&[2], alone, &[2]);
    let report = abandoned.check();
    assert!(report.count(Property::SafeDelivery) >= 1, "{report}");
    // Unless node 1 saw it go: node 2 missing from node 1's next transitional configuration.
    let mut seen_going = safe_in_transitional(&[2], alone, &[2]);
    let rc = RingId {
        seq: 12,
        rep: NodeId(1),
    };
    seen_going.config(2000, 1, ConfigKind::Transitional, RB, &[1], &[2], &[]);
    seen_going.config(2001, 1, ConfigKind::Regular, rc, &[1], &[2], &[]);
    let report = seen_going.check();
    assert_eq!(report.count(Property::SafeDelivery), 0, "{report}");
}

// 17. Stable members.

/// Nodes 1 and 2 on ring 1.4, each then alone in its own ring, then together again in 1.12:
/// a valid extended-virtual-synchrony history (a partition), unless nothing separated them.
fn split_pair() -> History {
    let mut h = History::default();
    h.meta(2, true);
    let (ra, rc) = (ring(1, 4), ring(1, 12));
    for node in 1..=2 {
        h.config(100, node, ConfigKind::Regular, ra, &[1, 2], &[], &[1, 2]);
    }
    for node in 1..=2 {
        let alone = ring(node, 8);
        h.config(200, node, ConfigKind::Transitional, ra, &[node], &[], &[]);
        h.config(201, node, ConfigKind::Regular, alone, &[node], &[], &[]);
        h.config(
            300,
            node,
            ConfigKind::Transitional,
            alone,
            &[node],
            &[],
            &[],
        );
        h.config(
            301,
            node,
            ConfigKind::Regular,
            rc,
            &[1, 2],
            &[],
            &[3 - node],
        );
    }
    h
}

fn check_stable(h: &History, pairs: &[(u32, u32)]) -> Report {
    check(
        &h.events,
        &CheckParams {
            stable_pairs: Some(pairs.iter().map(|&(a, b)| (n(a), n(b))).collect()),
            ..CheckParams::default()
        },
    )
}

#[test]
fn never_faulted_nodes_that_exclude_each_other() {
    let h = split_pair();
    assert!(h.check().is_ok(), "a partition is valid EVS: {}", h.check());
    let report = check_stable(&h, &[(1, 2)]);
    assert_only(&report, Property::StableMembers);
    assert_eq!(report.count(Property::StableMembers), 3, "{report}");
    assert!(
        report.violations.iter().any(|v| v.message.contains(
            "node 1 installed ring 1.8 [1] at t=201 without node 2, although neither was faulted"
        )),
        "{report}"
    );
    assert!(
        report.violations.iter().any(|v| v
            .message
            .contains("nodes 1 and 2 (never faulted) diverge at their regular configuration #2")),
        "{report}"
    );
    // Pairs the caller did not name are not checked.
    assert!(check_stable(&h, &[]).is_ok());
    // Node 3's crash and restart leave nodes 1 and 2 together: no violation.
    let m = check_stable(&membership(), &[(1, 2)]);
    assert!(m.is_ok(), "{m}");
}

#[test]
fn never_faulted_nodes_with_different_ring_sequences() {
    // Both stay together, but node 1 installs a ring 1.8 [1,2] node 2 never installs.
    let mut h = History::default();
    h.meta(2, true);
    let (ra, rb, rc) = (ring(1, 4), ring(1, 8), ring(1, 12));
    for node in 1..=2 {
        h.config(100, node, ConfigKind::Regular, ra, &[1, 2], &[], &[1, 2]);
    }
    h.config(200, 1, ConfigKind::Transitional, ra, &[1, 2], &[], &[]);
    h.config(201, 1, ConfigKind::Regular, rb, &[1, 2], &[], &[]);
    h.config(300, 1, ConfigKind::Transitional, rb, &[1], &[], &[]);
    h.config(301, 1, ConfigKind::Regular, rc, &[1, 2], &[], &[2]);
    h.config(300, 2, ConfigKind::Transitional, ra, &[2], &[], &[]);
    h.config(301, 2, ConfigKind::Regular, rc, &[1, 2], &[], &[1]);
    let report = check_stable(&h, &[(1, 2)]);
    assert!(
        report
            .violations
            .iter()
            .any(|v| v.property == Property::StableMembers
                && v.message.contains(
                    "diverge at their regular configuration #2: node 1 installed ring 1.8 [1,2]"
                )),
        "{report}"
    );
}
