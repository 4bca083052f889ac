//! The EVT calls on a perfect in-memory ring: each call's success and its specified errors,
//! delivery to matching subscriptions, priorities, flow control and lost events, retention,
//! unlink, and merges after partitions.

use super::*;
use crate::exec::testkit::TestRing;
use ais_proto::evt::{FilterType, OPEN_PUBLISHER, OPEN_SUBSCRIBER};

const SEC: u64 = 1_000_000_000;
const ALL: u8 = OPEN_CREATE | OPEN_PUBLISHER | OPEN_SUBSCRIBER;

fn ring_with(n: u32, cfg: EvtConfig) -> TestRing {
    let mut r = TestRing::new(n, move || {
        vec![Box::new(Evt::new(cfg)) as Box<dyn Service + Send>]
    });
    r.flush();
    for i in 1..=n {
        r.node(i).connect(1, 100, ID);
    }
    r
}

fn ring_of(n: u32) -> TestRing {
    ring_with(n, EvtConfig::default())
}

fn b(s: &str) -> Bytes {
    Bytes::copy_from_slice(s.as_bytes())
}

/// One delivery as a client sees it: (channel, subscription, event id, priority).
type Got = (u64, u32, u64, u8);

/// Sends `req` and runs the ring until nothing moves: the answer and this node's callbacks.
fn call_cb(r: &mut TestRing, node: u32, req: Request) -> (Reply<Response>, Vec<Callback>) {
    r.node(node).core.request_value(1, 77, &req);
    r.flush();
    let effects = r.node(node).take();
    let reply = effects
        .iter()
        .filter_map(|e| e.reply::<Response>())
        .find(|(c, id, _)| *c == 1 && *id == 77)
        .map(|(_, _, r)| r)
        .unwrap_or_else(|| panic!("no answer to {req:?}"));
    let cbs = effects
        .iter()
        .filter_map(|e| e.callback::<Callback>())
        .map(|(_, cb)| cb)
        .collect();
    (reply, cbs)
}

/// Acknowledges `count` deliveries of connection 1 at `node`: no answer (the client does
/// not wait for one), only the deliveries it lets out.
fn consume(r: &mut TestRing, node: u32, count: u32) -> Vec<Callback> {
    r.node(node)
        .core
        .request_value(1, 77, &Request::Consumed { count });
    r.flush();
    let effects = r.node(node).take();
    assert!(
        effects.iter().all(|e| e.reply::<Response>().is_none()),
        "Consumed is not answered: {effects:?}"
    );
    effects
        .iter()
        .filter_map(|e| e.callback::<Callback>())
        .map(|(_, cb)| cb)
        .collect()
}

/// As [`call_cb`], the callbacks left for [`delivered`].
fn call(r: &mut TestRing, node: u32, req: Request) -> Reply<Response> {
    r.node(node).core.request_value(1, 77, &req);
    r.flush();
    let n = r.node(node);
    n.run();
    let i = n
        .out
        .iter()
        .position(|e| {
            e.reply::<Response>()
                .is_some_and(|(c, id, _)| c == 1 && id == 77)
        })
        .unwrap_or_else(|| panic!("no answer to {req:?}"));
    let e = n.out.remove(i);
    e.reply::<Response>().expect("an answer").2
}

fn got(cbs: &[Callback]) -> Vec<Got> {
    cbs.iter()
        .filter_map(|cb| match cb {
            Callback::Deliver {
                channel,
                subscription,
                header,
                ..
            } => Some((*channel, *subscription, header.id, header.priority)),
            _ => None,
        })
        .collect()
}

/// The deliveries waiting at `node`.
fn delivered(r: &mut TestRing, node: u32) -> Vec<Got> {
    let cbs: Vec<Callback> = r
        .node(node)
        .take()
        .iter()
        .filter_map(|e| e.callback::<Callback>())
        .map(|(_, cb)| cb)
        .collect();
    got(&cbs)
}

struct Stats(BTreeMap<&'static str, u64>);

impl Visitor for Stats {
    fn counter(&mut self, name: &'static str, value: u64) {
        self.0.insert(name, value);
    }
    fn gauge(&mut self, name: &'static str, value: u64) {
        self.0.insert(name, value);
    }
}

fn stats(r: &mut TestRing, node: u32) -> BTreeMap<&'static str, u64> {
    use dataplane::stats::Visit;
    let mut s = Stats(BTreeMap::new());
    r.node(node).core.visit(&mut s);
    s.0
}

fn err(e: AisError) -> Reply<Response> {
    Reply::Error(e)
}

fn open(r: &mut TestRing, node: u32, name: &str, flags: u8) -> u64 {
    match call(
        r,
        node,
        Request::Open {
            name: b(name),
            flags,
        },
    ) {
        Reply::Service(Response::Opened { channel }) => channel,
        other => panic!("open {name}: {other:?}"),
    }
}

fn filter(kind: FilterType, p: &str) -> Filter {
    Filter {
        kind: kind.code(),
        pattern: b(p),
    }
}

fn subscribe(r: &mut TestRing, node: u32, channel: u64, sub: u32, filters: Vec<Filter>) {
    let req = Request::Subscribe {
        channel,
        subscription: sub,
        filters,
    };
    assert_eq!(call(r, node, req), Reply::Ok);
}

fn header(priority: u8, retention: u64, patterns: &[&str]) -> EventHeader {
    EventHeader {
        id: 0,
        priority,
        retention,
        publish_time: 0,
        publisher: b("test"),
        patterns: patterns.iter().map(|p| b(p)).collect(),
    }
}

fn publish_reply(r: &mut TestRing, node: u32, channel: u64, h: EventHeader) -> Reply<Response> {
    call(
        r,
        node,
        Request::Publish {
            channel,
            header: h,
            data: b("data"),
        },
    )
}

fn publish(r: &mut TestRing, node: u32, channel: u64, h: EventHeader) -> u64 {
    match publish_reply(r, node, channel, h) {
        Reply::Service(Response::Published { event }) => event,
        other => panic!("publish: {other:?}"),
    }
}

#[test]
fn open_checks_its_arguments_and_the_name() {
    let mut r = ring_of(2);
    let o = |name: &str, flags| Request::Open {
        name: b(name),
        flags,
    };
    assert_eq!(
        call(&mut r, 1, o("ch", OPEN_PUBLISHER)),
        err(AisError::NotExist)
    );
    assert_eq!(call(&mut r, 1, o("ch", 0x8)), err(AisError::BadFlags));
    assert_eq!(call(&mut r, 1, o("", ALL)), err(AisError::InvalidParam));
    assert_eq!(
        call(&mut r, 1, o(&"n".repeat(MAX_NAME + 1), ALL)),
        err(AisError::NameTooLong)
    );
    let h1 = open(&mut r, 1, "ch", ALL);
    // Another node finds it without CREATE; handles are per connection.
    let h2 = open(&mut r, 2, "ch", OPEN_SUBSCRIBER);
    assert_eq!(
        call(&mut r, 1, Request::Close { channel: h2 + 100 }),
        err(AisError::BadHandle)
    );
    // The asynchronous open answers OK, then calls back.
    let (reply, cbs) = call_cb(
        &mut r,
        2,
        Request::OpenAsync {
            name: b("nope"),
            flags: OPEN_SUBSCRIBER,
            invocation: 9,
        },
    );
    assert_eq!(reply, Reply::Ok);
    assert_eq!(
        cbs,
        [Callback::Open {
            invocation: 9,
            result: Err(AisError::NotExist)
        }]
    );
    let (reply, cbs) = call_cb(
        &mut r,
        2,
        Request::OpenAsync {
            name: b("ch"),
            flags: OPEN_SUBSCRIBER,
            invocation: 10,
        },
    );
    assert_eq!(reply, Reply::Ok);
    assert!(matches!(
        cbs[..],
        [Callback::Open {
            invocation: 10,
            result: Ok(_)
        }]
    ));
    assert_eq!(call(&mut r, 1, Request::Close { channel: h1 }), Reply::Ok);
    assert_eq!(
        call(&mut r, 1, Request::Close { channel: h1 }),
        err(AisError::BadHandle)
    );
    // Three opens of "ch" were made, one closed: the list says two.
    match call(&mut r, 2, Request::List { start: 0 }) {
        Reply::Service(Response::List { items, next: None }) => {
            assert_eq!(items.len(), 1);
            assert_eq!((items[0].opens, items[0].unlinked), (2, false));
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn events_reach_every_matching_subscription_at_every_node() {
    let mut r = ring_of(2);
    let p = open(&mut r, 1, "ch", ALL);
    let s2 = open(&mut r, 2, "ch", OPEN_SUBSCRIBER);
    subscribe(&mut r, 1, p, 1, vec![filter(FilterType::PassAll, "")]);
    subscribe(&mut r, 2, s2, 5, vec![filter(FilterType::Prefix, "al")]);
    subscribe(
        &mut r,
        2,
        s2,
        6,
        vec![
            filter(FilterType::Suffix, "ha"),
            filter(FilterType::Exact, "x"),
        ],
    );
    let e1 = publish(&mut r, 1, p, header(2, 0, &["alpha", "x"]));
    let e2 = publish(&mut r, 1, p, header(2, 0, &["beta"]));
    assert_eq!(e1 >> 32, 1, "the publisher's node id is in the event id");
    assert!(e2 > e1);
    assert_eq!(delivered(&mut r, 1), [(p, 1, e1, 2), (p, 1, e2, 2)]);
    // Once per matching subscription: e1 matches both of node 2's, e2 neither.
    assert_eq!(delivered(&mut r, 2), [(s2, 5, e1, 2), (s2, 6, e1, 2)]);
    // The data and attributes travel.
    let cbs = consume(&mut r, 1, 2);
    assert!(cbs.is_empty());
    let id = publish(&mut r, 2 - 1, p, header(0, 0, &["alpha"]));
    r.node(2)
        .core
        .request_value(1, 5, &Request::Consumed { count: 0 });
    let cbs: Vec<Callback> = r
        .node(2)
        .take()
        .iter()
        .filter_map(|e| e.callback::<Callback>())
        .map(|(_, c)| c)
        .collect();
    match &cbs[..] {
        [Callback::Deliver { header, data, .. }] => {
            assert_eq!((header.id, header.priority), (id, 0));
            assert_eq!(&header.publisher[..], b"test");
            assert_eq!(&data[..], b"data");
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn publish_subscribe_and_clear_give_their_specified_errors() {
    let cfg = EvtConfig {
        max_subscriptions: 2,
        max_retained: 1,
        ..EvtConfig::default()
    };
    let mut r = ring_with(1, cfg);
    let pub_only = open(&mut r, 1, "ch", OPEN_CREATE | OPEN_PUBLISHER);
    let sub_only = open(&mut r, 1, "ch", OPEN_SUBSCRIBER);
    let pass = || vec![filter(FilterType::PassAll, "")];
    let sub = |channel, subscription, filters| Request::Subscribe {
        channel,
        subscription,
        filters,
    };
    assert_eq!(
        publish_reply(&mut r, 1, sub_only, header(1, 0, &[])),
        err(AisError::Access)
    );
    assert_eq!(
        call(&mut r, 1, sub(pub_only, 1, pass())),
        err(AisError::Access)
    );
    assert_eq!(
        publish_reply(&mut r, 1, 99, header(1, 0, &[])),
        err(AisError::BadHandle)
    );
    assert_eq!(
        publish_reply(&mut r, 1, pub_only, header(4, 0, &[])),
        err(AisError::InvalidParam)
    );
    let big = Request::Publish {
        channel: pub_only,
        header: header(1, 0, &[]),
        data: Bytes::from(vec![0; MAX_DATA + 1]),
    };
    assert_eq!(call(&mut r, 1, big), err(AisError::TooBig));
    let many: Vec<String> = (0..=MAX_PATTERNS).map(|i| i.to_string()).collect();
    let many: Vec<&str> = many.iter().map(String::as_str).collect();
    assert_eq!(
        publish_reply(&mut r, 1, pub_only, header(1, 0, &many)),
        err(AisError::TooBig)
    );
    assert_eq!(
        call(
            &mut r,
            1,
            sub(
                sub_only,
                1,
                vec![filter(FilterType::PassAll, ""); 1]
                    .into_iter()
                    .chain([Filter {
                        kind: 7,
                        pattern: Bytes::new()
                    }])
                    .collect()
            )
        ),
        err(AisError::InvalidParam)
    );
    assert_eq!(call(&mut r, 1, sub(sub_only, 1, pass())), Reply::Ok);
    assert_eq!(
        call(&mut r, 1, sub(sub_only, 1, pass())),
        err(AisError::Exist)
    );
    assert_eq!(call(&mut r, 1, sub(sub_only, 2, pass())), Reply::Ok);
    assert_eq!(
        call(&mut r, 1, sub(sub_only, 3, pass())),
        err(AisError::NoResources)
    );
    let unsub = |s| Request::Unsubscribe {
        channel: sub_only,
        subscription: s,
    };
    assert_eq!(call(&mut r, 1, unsub(2)), Reply::Ok);
    assert_eq!(call(&mut r, 1, unsub(2)), err(AisError::NotExist));
    // Retention: one retained event at most.
    let e = publish(&mut r, 1, pub_only, header(1, 60 * SEC, &[]));
    assert_eq!(
        publish_reply(&mut r, 1, pub_only, header(1, 60 * SEC, &[])),
        err(AisError::NoResources)
    );
    let clear = |event| Request::RetentionTimeClear {
        channel: pub_only,
        event,
    };
    assert_eq!(
        call(&mut r, 1, clear(EVENT_ID_LOST)),
        err(AisError::InvalidParam)
    );
    assert_eq!(call(&mut r, 1, clear(e + 1)), err(AisError::NotExist));
    assert_eq!(call(&mut r, 1, clear(e)), Reply::Ok);
    assert_eq!(call(&mut r, 1, clear(e)), err(AisError::NotExist));
    // The clear freed the room.
    publish(&mut r, 1, pub_only, header(1, 60 * SEC, &[]));
    // Unknown operations and malformed requests are the core's business: a cut body
    // closes the connection and is counted.
    r.node(1)
        .core
        .request(1, 90, 84, Bytes::from_static(&[1, 2]));
    r.flush();
    assert!(
        r.node(1)
            .take()
            .iter()
            .any(|e| matches!(e, crate::exec::Effect::Disconnect { conn: 1 }))
    );
    assert_eq!(r.node(1).core.core_counters().ipc_malformed, 1);
}

#[test]
fn retained_events_reach_later_subscribers_until_they_expire_or_are_cleared() {
    let mut r = ring_of(2);
    let p = open(&mut r, 1, "ch", ALL);
    let keep = publish(&mut r, 1, p, header(1, 60 * SEC, &["a"]));
    let short = publish(&mut r, 1, p, header(1, 2 * SEC, &["a"]));
    let clear = publish(&mut r, 1, p, header(1, 60 * SEC, &["b"]));
    let _plain = publish(&mut r, 1, p, header(1, 0, &["a"]));
    assert_eq!(
        call(
            &mut r,
            1,
            Request::RetentionTimeClear {
                channel: p,
                event: clear
            }
        ),
        Reply::Ok
    );
    let s = open(&mut r, 2, "ch", OPEN_SUBSCRIBER);
    let (reply, cbs) = call_cb(
        &mut r,
        2,
        Request::Subscribe {
            channel: s,
            subscription: 1,
            filters: vec![],
        },
    );
    assert_eq!(reply, Reply::Ok);
    assert_eq!(got(&cbs), [(s, 1, keep, 1), (s, 1, short, 1)]);
    // A second subscription gets them too; the first does not get them again.
    let (_, cbs) = call_cb(
        &mut r,
        2,
        Request::Subscribe {
            channel: s,
            subscription: 2,
            filters: vec![filter(FilterType::Exact, "a")],
        },
    );
    assert_eq!(got(&cbs), [(s, 2, keep, 1), (s, 2, short, 1)]);
    // After 3 s the short one is gone everywhere.
    for n in [1, 2] {
        r.node(n).core.tick(3 * SEC);
    }
    let s3 = open(&mut r, 2, "ch", OPEN_SUBSCRIBER);
    let (_, cbs) = call_cb(
        &mut r,
        2,
        Request::Subscribe {
            channel: s3,
            subscription: 1,
            filters: vec![],
        },
    );
    assert_eq!(got(&cbs), [(s3, 1, keep, 1)]);
}

#[test]
fn a_slow_subscriber_is_told_of_lost_events_and_priorities_overtake() {
    let cfg = EvtConfig {
        delivery_window: 2,
        delivery_queue: 3,
        ..EvtConfig::default()
    };
    let mut r = ring_with(1, cfg);
    let h = open(&mut r, 1, "ch", ALL);
    subscribe(&mut r, 1, h, 1, vec![]);
    let ids: Vec<u64> = (0..5)
        .map(|_| publish(&mut r, 1, h, header(3, 0, &[])))
        .collect();
    // Two in flight, three queued.
    assert_eq!(delivered(&mut r, 1), [(h, 1, ids[0], 3), (h, 1, ids[1], 3)]);
    // A priority-0 event evicts the newest priority-3 one; a sixth priority-3 one is lost.
    let urgent = publish(&mut r, 1, h, header(0, 0, &[]));
    let dropped = publish(&mut r, 1, h, header(3, 0, &[]));
    assert_eq!(delivered(&mut r, 1), []);
    let cbs = consume(&mut r, 1, 2);
    // The lost-event notification first, then the urgent one.
    match &cbs[..] {
        [
            Callback::Deliver {
                subscription: 1,
                header: lost,
                ..
            },
            Callback::Deliver { header: next, .. },
        ] => {
            assert_eq!(lost.id, EVENT_ID_LOST);
            assert_eq!(lost.patterns, [Bytes::from_static(LOST_EVENT_PATTERN)]);
            assert_eq!(next.id, urgent);
        }
        other => panic!("{other:?}"),
    }
    let cbs = consume(&mut r, 1, 2);
    assert_eq!(got(&cbs), [(h, 1, ids[2], 3), (h, 1, ids[3], 3)]);
    let cbs = consume(&mut r, 1, 2);
    assert_eq!(got(&cbs), [], "ids[4] was evicted and {dropped:#x} dropped");
    let stats = stats(&mut r, 1);
    assert_eq!(stats.get("evt_lost"), Some(&2), "{stats:?}");
    assert_eq!(stats.get("evt_lost_notifications"), Some(&1));
}

#[test]
fn unlink_frees_the_name_while_openers_keep_the_channel() {
    let mut r = ring_of(2);
    let h1 = open(&mut r, 1, "ch", ALL);
    let h2 = open(&mut r, 2, "ch", OPEN_SUBSCRIBER);
    subscribe(&mut r, 2, h2, 1, vec![]);
    let unlink = || Request::Unlink { name: b("ch") };
    assert_eq!(call(&mut r, 1, unlink()), Reply::Ok);
    assert_eq!(call(&mut r, 1, unlink()), err(AisError::NotExist));
    assert_eq!(
        call(
            &mut r,
            2,
            Request::Open {
                name: b("ch"),
                flags: OPEN_SUBSCRIBER
            }
        ),
        err(AisError::NotExist)
    );
    // The old opens still work.
    let e = publish(&mut r, 1, h1, header(1, 0, &[]));
    assert_eq!(delivered(&mut r, 2), [(h2, 1, e, 1)]);
    // A new channel takes the name; events on it do not reach the old one.
    let n1 = open(&mut r, 1, "ch", ALL);
    publish(&mut r, 1, n1, header(1, 0, &[]));
    assert_eq!(delivered(&mut r, 2), []);
    // The unlinked channel goes at its last close.
    assert_eq!(call(&mut r, 1, Request::Close { channel: h1 }), Reply::Ok);
    assert_eq!(call(&mut r, 2, Request::Close { channel: h2 }), Reply::Ok);
    match call(&mut r, 1, Request::List { start: 0 }) {
        Reply::Service(Response::List { items, .. }) => {
            assert_eq!(items.len(), 1);
            assert!(!items[0].unlinked);
        }
        other => panic!("{other:?}"),
    }
}

/// Two partitions publish retained events; after the heal every node retains the union and
/// each subscription is delivered the events it had not had, once.
#[test]
fn after_a_partition_retained_events_are_merged_and_delivered_once() {
    let mut r = ring_of(3);
    let h1 = open(&mut r, 1, "ch", ALL);
    let h3 = open(&mut r, 3, "ch", ALL);
    subscribe(&mut r, 1, h1, 1, vec![]);
    subscribe(&mut r, 3, h3, 1, vec![]);
    let both = publish(&mut r, 1, h1, header(1, 60 * SEC, &[]));
    let cleared = publish(&mut r, 1, h1, header(1, 60 * SEC, &[]));
    delivered(&mut r, 1);
    delivered(&mut r, 3);
    r.config(&[1], &[1]);
    r.flush();
    let left = publish(&mut r, 1, h1, header(1, 60 * SEC, &[]));
    assert_eq!(
        call(
            &mut r,
            1,
            Request::RetentionTimeClear {
                channel: h1,
                event: cleared
            }
        ),
        Reply::Ok
    );
    r.config(&[2, 3], &[2, 3]);
    r.flush();
    let right = publish(&mut r, 3, h3, header(1, 60 * SEC, &[]));
    let gone = publish(&mut r, 3, h3, header(1, 0, &[]));
    delivered(&mut r, 1);
    delivered(&mut r, 3);
    r.config(&[1, 2, 3], &[1, 2, 3]);
    r.flush();
    let mut want = vec![both, left, right];
    want.sort_unstable();
    // Each side learnt the other's event, and not the cleared one or the unretained one.
    assert_eq!(delivered(&mut r, 1), [(h1, 1, right, 1)]);
    assert_eq!(delivered(&mut r, 3), [(h3, 1, left, 1)]);
    // Every node retains the union: a new subscription anywhere gets it.
    for n in 1..=3 {
        let h = open(&mut r, n, "ch", OPEN_SUBSCRIBER);
        let (_, cbs) = call_cb(
            &mut r,
            n,
            Request::Subscribe {
                channel: h,
                subscription: 9,
                filters: vec![],
            },
        );
        let mut ids: Vec<u64> = got(&cbs).iter().map(|g| g.2).collect();
        ids.sort_unstable();
        assert_eq!(ids, want, "node {n}");
    }
    let _ = gone;
    // Event ids continue above what the cluster saw.
    let next = publish(&mut r, 3, h3, header(1, 0, &[]));
    assert!(next > right);
}

#[test]
fn a_change_that_crosses_a_membership_change_answers_try_again() {
    let mut r = ring_of(2);
    r.node(1).core.request_value(
        1,
        5,
        &Request::Open {
            name: b("ch"),
            flags: ALL,
        },
    );
    r.node(1).run();
    // A new configuration before the open is ordered.
    r.config(&[1, 2], &[1, 2]);
    r.flush();
    let replies = r.node(1).replies::<Response>();
    assert!(
        replies.contains(&(5, Reply::Error(AisError::TryAgain))),
        "{replies:?}"
    );
}

#[test]
fn malformed_ring_messages_change_nothing_and_are_counted() {
    let mut r = ring_of(2);
    let h = open(&mut r, 1, "ch", ALL);
    subscribe(&mut r, 1, h, 1, vec![]);
    let msg = ring::encode(
        ID,
        &RingMessage::Publish {
            key: ChannelKey {
                name: b("ch"),
                unlinked: 0,
            },
            max_retained: 10,
            header: EventHeader {
                id: 5 << 32,
                ..header(1, 0, &[])
            },
            data: Bytes::new(),
        },
    );
    let mut cut = msg.to_vec();
    cut.truncate(20);
    r.inject(2, Bytes::from(cut));
    let mut bad_prio = ring::encode(
        ID,
        &RingMessage::Publish {
            key: ChannelKey {
                name: b("ch"),
                unlinked: 0,
            },
            max_retained: 10,
            header: EventHeader {
                id: 5 << 32,
                ..header(9, 0, &[])
            },
            data: Bytes::new(),
        },
    );
    r.inject(2, bad_prio.clone());
    let mut unknown = bad_prio.to_vec();
    unknown[2] = 0xee;
    bad_prio = Bytes::from(unknown);
    r.inject(2, bad_prio);
    assert_eq!(delivered(&mut r, 1), []);
    assert_eq!(r.node(1).core.core_counters().exec_malformed, 3);
    // The well-formed one is delivered.
    r.inject(2, msg);
    assert_eq!(delivered(&mut r, 1), [(h, 1, 5 << 32, 1)]);
}

#[test]
fn requests_wait_for_the_first_sync() {
    let mut r = ring_of(1);
    // A new ring: requests are held until the sync activates, then answered.
    r.config(&[1], &[1]);
    r.node(1).core.request_value(
        1,
        5,
        &Request::Open {
            name: b("ch"),
            flags: ALL,
        },
    );
    r.node(1).run();
    assert!(r.node(1).core.syncing());
    r.flush();
    let replies = r.node(1).replies::<Response>();
    assert!(
        matches!(replies[..], [(5, Reply::Service(Response::Opened { .. }))]),
        "{replies:?}"
    );
}
